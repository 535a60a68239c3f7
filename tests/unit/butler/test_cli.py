"""The command line: repo create, ingest raws/refcat/orbits, precache."""

from __future__ import annotations

from pathlib import Path

import pytest

from shutterline import exceptions
from shutterline.butler import names, repo
from shutterline.cli import main

from .conftest import Central, make_refcat, write_raw


def test_create_and_ingest_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(tmp_path / "repo")
    assert main.main(["repo", "create", root]) == 0
    for v in (7, 8):
        write_raw(tmp_path / "raws" / str(v) / f"raw_{v}_01.fits", v, 1)
    assert (
        main.main(["ingest", "raws", str(tmp_path / "raws"), "--repo", root, "--no-progress"]) == 0
    )
    make_refcat(n=50).write(tmp_path / "ref.fits")
    assert main.main(["ingest", "refcat", str(tmp_path / "ref.fits"), "--repo", root]) == 0
    (tmp_path / "orbits.csv").write_text("id,a_au\n1,2.5\n")
    assert main.main(["ingest", "orbits", str(tmp_path / "orbits.csv"), "--repo", root]) == 0
    out = capsys.readouterr().out
    assert "ingested 2 raws" in out and "reference-catalog shards" in out
    butler = repo.open_repo(root)
    assert len(butler.query_datasets(names.RAW, names.RAW_COLLECTION, explain=False)) == 2
    assert len(butler.query_datasets(names.ORBITS, names.ORBITS_COLLECTION, explain=False)) == 1


def test_malformed_raw_exits_65_naming_file_and_keyword(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(tmp_path / "repo")
    main.main(["repo", "create", root])
    bad = write_raw(tmp_path / "bad.fits", 9, 1, drop="EXPTIME")
    code = main.main(["ingest", "raws", str(bad), "--repo", root, "--no-progress"])
    err = capsys.readouterr().err
    assert code == exceptions.EXIT_PERMANENT
    assert str(bad) in err and "'EXPTIME'" in err


def test_precache_from_the_command_line(
    shared_central: Central, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    central = str(shared_central.root / "central")
    args = ["precache", "--repo", central, "--visit", "1000", "--detector", "1"]
    assert main.main([*args, "--out", str(tmp_path / "local")]) == 0
    assert "pre-cached" in capsys.readouterr().out
    local = repo.open_repo(str(tmp_path / "local"))
    assert len(local.query_datasets(names.RAW, names.RAW_COLLECTION, explain=False)) == 1


@pytest.mark.parametrize("command", [["ingest", "raws"], ["precache"], ["repo", "create"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main.main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: shutterline" in capsys.readouterr().out
