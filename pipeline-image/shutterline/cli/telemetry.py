"""``shutterline telemetry``: the worker pod's telemetry sidecar (docs/telemetry.md)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``telemetry`` to the command line."""
    p = subparsers.add_parser(
        "telemetry",
        help="watch the pipeline process from outside and record the pod span",
        description="Native sidecar of a worker pod: records the pod span (parented on "
        "TRACEPARENT), waits for the pipeline container's process, samples its CPU, memory "
        "and I/O from /proc at SHUTTERLINE_TELEMETRY_HZ into span events, OTLP metrics "
        "(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) and a summary file beside the spool. Exits 0 "
        "once the pipeline has exited, or on SIGTERM. Configured from the environment only.",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Handlers first: a pod deleted while the sidecar starts still gets its span ended.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    from shutterline.pipeline import settings
    from shutterline.telemetry import sidecar

    return sidecar.run(settings.Settings.from_env(), os.environ, stop)
