"""The ``calibs`` and ``templates`` subcommands: registered, documented, errors mapped."""

from __future__ import annotations

import argparse

import pytest

from shutterline import exceptions
from shutterline.cli import calibs, main


@pytest.mark.parametrize("command", [["calibs", "build"], ["templates", "build"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main.main([*command, "--help"])
    assert info.value.code == 0
    assert "--repo" in capsys.readouterr().out


def test_dates_parse_as_mjd() -> None:
    assert calibs.parse_mjd("61280.5") == 61280.5
    # 2026-08-28T00:00:00 UTC is MJD 61280.0 UTC; TAI runs 37 s ahead.
    assert calibs.parse_mjd("2026-08-28T00:00:00") == pytest.approx(61280.0 + 37 / 86400, abs=1e-8)
    with pytest.raises(argparse.ArgumentTypeError, match="not an MJD"):
        calibs.parse_mjd("yesterday")


def test_empty_range_exits_permanent(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from shutterline.butler import repo

    root = f"{tmp_path}/repo"
    repo.create_repo(root)
    code = main.main(
        ["calibs", "build", "--repo", root, "--valid-from", "61000", "--valid-to", "60000"]
    )
    assert code == exceptions.EXIT_PERMANENT
    assert "empty validity range" in capsys.readouterr().err
