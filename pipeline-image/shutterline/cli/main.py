"""Entry point: ``shutterline <subcommand> ...``."""

from __future__ import annotations

import os

# One BLAS thread per process: detectors run in parallel processes, and threaded OpenBLAS on
# small products under load was measured 100x slower. Must be set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

from shutterline import exceptions  # noqa: E402
from shutterline.pipeline import heap  # noqa: E402

__all__ = ["build_parser", "main"]

# Subcommand modules, in the order ``--help`` lists them. Worker pods run ``pod``,
# ``relay`` and ``telemetry``; other distributions (the operator's ``schedule``) add
# theirs through the ``shutterline.commands`` entry-point group, so this package never
# imports them.
_COMMANDS = (
    "simulate",
    "ingest",
    "calibs",
    "templates",
    "precache",
    "run",
    "demo",
    "pod",
    "relay",
    "telemetry",
    "orbits",
    "report",
)
_PLUGINS = "shutterline.commands"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every available subcommand registered, or only ``command``'s.

    Naming a built-in ``command`` registers that one alone: a process that runs ``pod`` or
    ``run`` then imports neither the other subcommands nor the entry-point machinery
    (``importlib.metadata``, about 0.1 s).
    """
    parser = argparse.ArgumentParser(
        prog="shutterline", description="Prompt processing for a wide-field survey telescope."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    only = command in _COMMANDS
    for name in (command,) if only else _COMMANDS:
        module_name = f"shutterline.cli.{name}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(subparsers)
    if not only:
        _register_plugins(subparsers)
    return parser


def _register_plugins(subparsers: Any) -> None:
    """Subcommands other distributions add through the ``shutterline.commands`` group."""
    import importlib.metadata

    for entry in importlib.metadata.entry_points(group=_PLUGINS):
        try:
            module = entry.load()
        except ModuleNotFoundError as exc:  # e.g. the pipeline image has no kopf/kubernetes
            logging.getLogger(__name__).debug("subcommand %s unavailable: %s", entry.name, exc)
            continue
        module.register(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; map Shutterline errors to their exit codes with a one-line reason."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # For every subcommand and the worker processes it forks: building a template detector
    # paid 0.5 s of system time in fresh pages for its large arrays (2.17 -> 1.89 s with it).
    heap.keep_freed_memory()
    try:
        return int(args.func(args) or 0)
    except exceptions.ShutterlineError as exc:
        print(f"shutterline {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
