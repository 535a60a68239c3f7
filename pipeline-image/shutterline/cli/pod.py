"""``shutterline pod precache|run``: the worker pod's init and main containers.

Both read everything from the environment the operator sets (`Settings.from_env`,
`DetectorTask.from_env`); see docs/architecture.md, "The worker pod".
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``pod precache`` and ``pod run``."""
    pod = subparsers.add_parser(
        "pod",
        help="the worker pod's containers (settings from the environment)",
        description="Commands of a worker pod's containers. Every setting comes from the "
        "environment: SHUTTERLINE_VISIT_SPEC, SHUTTERLINE_DETECTORS, JOB_COMPLETION_INDEX, "
        "SHUTTERLINE_REPO, SHUTTERLINE_APDB, SHUTTERLINE_WORKDIR, SHUTTERLINE_SPOOL, ...",
    )
    commands = pod.add_subparsers(dest="pod_command", required=True, metavar="STEP")
    commands.add_parser(
        "precache",
        help="pre-stage this detector's inputs from the visit's announcement",
        description="Predict the detector's footprint from the announced boresight and copy "
        "the bias and flat valid at the observation time, the overlapping templates, the "
        "reference shards and the orbits into the local repository (no raw needed).",
    ).set_defaults(func=_precache)
    commands.add_parser(
        "run",
        help="load every input, wait for the raw, process, spool alerts, report",
        description="Load the pre-staged inputs into memory, wait for the raw at the rawUri "
        "(up to SHUTTERLINE_RAW_WAIT_S; exit 66 if it never lands), check its headers "
        "against the announcement, run the stages, spool alerts, write the metrics record, "
        "the done marker and the termination message.",
    ).set_defaults(func=_run)


def _precache(args: argparse.Namespace) -> int:
    from shutterline.pipeline import pod, settings, task

    cfg = settings.Settings.from_env()
    job = task.DetectorTask.from_env()
    report = pod.precache_task(cfg, job)
    if report is None:
        print(f"visit {job.visit} detector {job.detector}: already pre-staged")
    else:
        print(
            f"pre-staged visit {job.visit} detector {job.detector}: {report.n_datasets} "
            f"datasets, {report.bytes / 1e6:.1f} MB in {report.wall_seconds:.2f} s"
        )
    return 0


def _run(args: argparse.Namespace) -> int:
    from shutterline import exceptions
    from shutterline.pipeline import pod, records, settings, task

    try:
        cfg = settings.Settings.from_env()
        job = task.DetectorTask.from_env()
    except exceptions.ShutterlineError as exc:
        # Nothing to process: still say why, where the operator reads it.
        result = records.PodResult(-1, -1)
        result.fail(exc, exc.exit_code)
        records.write_termination_message(result, os.environ)
        print(f"shutterline pod run: error: {exc}", file=sys.stderr)
        return exc.exit_code
    code = pod.run_task(cfg, job)
    if code:
        print(
            f"shutterline pod run: visit {job.visit} detector {job.detector} failed (exit {code})",
            file=sys.stderr,
        )
    return code
