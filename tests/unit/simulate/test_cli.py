"""``shutterline simulate`` writes the tree of docs/architecture.md."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shutterline.cli import main


def test_simulate_command_writes_the_tree(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "night"
    code = main.main(
        [
            "simulate",
            "--out",
            str(out),
            "--seed",
            "3",
            "--visits",
            "2",
            "--detectors",
            "1",
            "--fields",
            "1",
            "--band",
            "g",
            "r",
            "--template-visits",
            "1",
            "--shape",
            "128x256",
        ]
    )
    assert code == 0
    for rel in (
        "refcat/refcat.fits",
        "solarsystem/orbits.csv",
        "truth/sources.csv",
        "schedule.yaml",
        "night.yaml",
    ):
        assert (out / rel).is_file(), rel
    record = yaml.safe_load((out / "night.yaml").read_text())
    assert record["config"]["nx"] == 128 and record["config"]["ny"] == 256
    assert set(record["exposures"]["flat"]) == {"g", "r"}
    sched = yaml.safe_load((out / "schedule.yaml").read_text())["visits"]
    assert [v["band"] for v in sched] == ["g", "r"]
    assert len(list((out / "raw").glob("*/*.fits"))) == 5 + 10 + 2 + 2
    assert "wrote 19 raws" in capsys.readouterr().out


def test_bad_shape_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main.main(["simulate", "--out", str(tmp_path), "--shape", "big"])


def test_rerun_with_fewer_exposures_leaves_no_stale_raws(tmp_path: Path) -> None:
    args = [
        "simulate",
        "--out",
        str(tmp_path),
        "--detectors",
        "1",
        "--fields",
        "1",
        "--template-visits",
        "0",
        "--shape",
        "128x256",
    ]
    assert main.main([*args, "--visits", "3"]) == 0
    assert main.main([*args, "--visits", "1"]) == 0
    raws = list((tmp_path / "raw").glob("*/*.fits"))
    assert len(raws) == 5 + 5 + 1
    assert len(list((tmp_path / "raw").iterdir())) == 11
