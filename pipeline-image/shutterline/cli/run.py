"""``shutterline run``: process a visit on one machine, exactly the code the pods run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``run`` and ``run-detector`` to the command line."""
    p = subparsers.add_parser(
        "run",
        help="process a visit's detectors on this machine",
        description="Process one visit: pre-cache each detector's inputs into a local "
        "repository (or read the backbone directly with --direct), run every stage, write "
        "alerts to the spool and sources to the APDB.",
    )
    p.add_argument("--repo", required=True, help="central repository (directory or s3://...)")
    p.add_argument("--visit", type=int, required=True, help="visit id (EXPNUM)")
    p.add_argument(
        "--detectors",
        type=_int_list,
        help="comma-separated detector numbers (default: every detector ingested for the visit)",
    )
    p.add_argument("--apdb", required=True, help="APDB: SQLite file path or PostgreSQL URL")
    p.add_argument("--spool", type=Path, required=True, help="alert spool directory")
    p.add_argument("--workdir", type=Path, default=Path("work"), help="scratch directory")
    p.add_argument("--direct", action="store_true", help="read the central repository directly")
    p.add_argument("--jobs", type=int, default=1, help="detectors processed in parallel")
    p.add_argument("--export", default="", help="comma-separated dataset types to export")
    p.add_argument("--otlp-endpoint", help="OTLP/HTTP receiver for spans")
    p.add_argument("--spans", type=Path, help="also write spans as JSON lines to this file")
    p.add_argument("--summary", type=Path, help="write a JSON summary here")
    add_kafka_arguments(p)
    p.set_defaults(func=_run)


def add_kafka_arguments(p: Any) -> None:
    """``--kafka`` and ``--schema-registry``: publish through the relay instead of files only."""
    p.add_argument(
        "--kafka",
        metavar="BOOTSTRAP",
        help="also publish the alerts and each detector's record to this Kafka broker through "
        "the alert relay (default: alerts stay in the spool as files)",
    )
    p.add_argument(
        "--schema-registry",
        metavar="URL",
        help="Confluent-compatible registry that must serve the alert schema (with --kafka)",
    )


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _run(args: argparse.Namespace) -> int:
    from shutterline.pipeline import settings, summary, visit

    cfg = settings.Settings(
        repo=args.repo,
        apdb=args.apdb,
        spool=args.spool,
        workdir=args.workdir,
        direct=args.direct,
        export=tuple(x for x in args.export.split(",") if x),
        otlp_endpoint=args.otlp_endpoint,
        spans_path=args.spans,
        kafka_bootstrap=args.kafka,
        schema_registry_url=args.schema_registry,
    )
    detectors = args.detectors or visit.detectors_of_visit(cfg, args.visit)
    reports = visit.run_visit(cfg, args.visit, detectors, jobs=args.jobs)
    print(summary.format_table(reports))
    if args.summary:
        args.summary.write_text(json.dumps(summary.to_json(reports), indent=2))
    failed = [r for r in reports if r.status != "succeeded"]
    for r in failed:
        print(f"detector {r.detector}: {r.reason}", file=sys.stderr)
    code = max((r.exit_code for r in failed), default=0)
    if cfg.kafka_bootstrap:
        from shutterline.relay import embedded

        outcome = embedded.publish_reports(cfg, reports)
        print(f"relay {outcome.state}: {outcome.status['acked']} alerts to {cfg.kafka_bootstrap}")
        code = max(code, outcome.exit_code)
    return code
