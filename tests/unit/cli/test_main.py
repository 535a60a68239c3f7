"""The entry point registers only the subcommand it runs, and every one for ``--help``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shutterline.cli import main


def _choices(parser: object) -> set[str]:
    sub = next(a for a in parser._actions if a.dest == "command")  # type: ignore[attr-defined]
    return set(sub.choices)


def test_a_named_command_registers_alone() -> None:
    assert _choices(main.build_parser("run")) == {"run"}


def test_help_lists_every_builtin_command() -> None:
    assert {"simulate", "ingest", "run", "demo"} <= _choices(main.build_parser(None))


def test_unknown_command_is_named_among_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main.main(["nosuch"])
    assert exc.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


def test_run_help_imports_no_entry_point_machinery() -> None:
    code = (
        "import sys; from shutterline.cli import main\n"
        "try:\n    main.main(['-v', 'run', '--help'])\nexcept SystemExit: pass\n"
        "print('importlib.metadata' in sys.modules, 'shutterline.cli.demo' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")[-2]
    assert out == "False False"
