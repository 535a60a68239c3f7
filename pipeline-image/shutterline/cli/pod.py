"""``shutterline pod precache|run|analyze``: the worker pod's containers and the analysis pod.

All read everything from the environment the operator sets (`Settings.from_env`,
`DetectorTask.from_env`); see docs/architecture.md, "The worker pod"
and "The analysis pod".
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``pod precache``, ``pod run`` and ``pod analyze``."""
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
    commands.add_parser(
        "analyze",
        help="the analysis pod: QA values of a visit from its exported products",
        description="After a visit's prompt pods: read the products they exported "
        "(calexp, src, difference_image, dia_source), the reference stars and the detectors' "
        "records on the metrics topic; write a qa record per detector and a qaVisit record "
        "to the repository and the metrics topic; write the termination message "
        '{"qa": {...}, "report": URI}. Exit 65 when no detector exported anything, 75 on a '
        "service fault.",
    ).set_defaults(func=_analyze)


def _precache(args: argparse.Namespace) -> int:
    from shutterline.butler import transient
    from shutterline.pipeline import pod, records, settings, task

    try:
        cfg = settings.Settings.from_env()
        job = task.DetectorTask.from_env()
        report = pod.precache_task(cfg, job)
    except Exception as exc:
        # Any failure gets the contract's code (a bug is not worth a retry: 65) and its reason
        # where the operator reads it, the container's termination message.
        result = records.PodResult(-1, -1)
        result.fail(exc, transient.exit_code(exc))
        records.write_termination_message(result, os.environ)
        print(f"shutterline pod precache: error: {result.reason}", file=sys.stderr)
        return result.exit_code
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


def _analyze(args: argparse.Namespace) -> int:
    from shutterline.pipeline import analyze

    code = analyze.run_analysis()
    if code:
        print(f"shutterline pod analyze: failed (exit {code})", file=sys.stderr)
    return code
