"""``shutterline demo``: the embedded default, a whole simulated night on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``demo`` to the command line."""
    p = subparsers.add_parser(
        "demo",
        help="simulate a night and process it end to end on this machine",
        description="Simulate a small night, ingest it into a local repository (SQLite "
        "registry, directory datastore), build calibrations and templates, process every "
        "visit in schedule order with a SQLite APDB, write alerts as Avro files, and print a "
        "table scored against the simulator's truth, with pictures of alerts and timings.",
    )
    p.add_argument("--workdir", type=Path, default=Path(".demo"), help="where everything goes")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--fields", type=int, default=3)
    p.add_argument("--detectors", type=int, default=2)
    p.add_argument("--visits", type=int, default=4, help="science visits per field")
    p.add_argument("--shape", default="2048x4096", help="pixels per detector, NXxNY")
    p.add_argument("--jobs", type=int, default=2, help="parallel processes")
    p.add_argument("--direct", action="store_true", help="read the repository directly")
    from shutterline.cli import run

    run.add_kafka_arguments(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from shutterline.demo import night

    nx, ny = (int(v) for v in args.shape.lower().split("x"))
    cfg = night.DemoConfig(
        workdir=args.workdir,
        seed=args.seed,
        fields=args.fields,
        detectors=args.detectors,
        visits=args.visits,
        shape=(nx, ny),
        jobs=args.jobs,
        direct=args.direct,
        kafka=args.kafka,
        schema_registry=args.schema_registry,
    )
    return night.run_demo(cfg)
