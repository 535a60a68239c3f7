"""``shutterline relay``: the alert-relay sidecar of a worker pod (settings from the env)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["expected_detector", "register"]

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``relay`` to the command line."""
    p = subparsers.add_parser(
        "relay",
        help="relay spooled alerts to Kafka (the worker pod's alert-relay sidecar)",
        description="Watch the alert spool, produce every packet to the alert topic "
        "(idempotent, acks=all, keyed by alert id) and delete it once the broker acknowledged "
        "it; when the pipeline's done marker is there and the spool is empty, publish the "
        "detector's record to the metrics topic, write relay.status.json and exit 0. Exits 69 "
        "(spool kept) if the broker stays unreachable for SHUTTERLINE_RELAY_GIVE_UP_S. "
        "Configured from the environment (docs/architecture.md, 'The worker pod').",
    )
    p.set_defaults(func=_run)


def expected_detector(env: Mapping[str, str]) -> set[tuple[int, int]] | None:
    """The pod's ``(visit, detector)`` from the Visit spec and completion index, if given."""
    spec, detectors = env.get("SHUTTERLINE_VISIT_SPEC"), env.get("SHUTTERLINE_DETECTORS")
    index = env.get("JOB_COMPLETION_INDEX")
    if not (spec and detectors and index):
        return None
    from shutterline import exceptions

    try:
        visit = int(json.loads(spec)["visitId"])
        detector = int([d for d in detectors.split(",") if d.strip()][int(index)])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise exceptions.PermanentError(
            f"SHUTTERLINE_VISIT_SPEC / SHUTTERLINE_DETECTORS / JOB_COMPLETION_INDEX: {exc!r}"
        ) from None
    return {(visit, detector)}


def _run(args: argparse.Namespace) -> int:
    from shutterline.pipeline import settings as settings_mod
    from shutterline.relay import loop, metrics
    from shutterline.telemetry import tracing

    settings = settings_mod.Settings.from_env()
    # configure adds the pod's k8s.* resource attributes from the downward-API variables.
    provider = tracing.configure("shutterline-relay", settings.otlp_endpoint, settings.spans_path)
    if settings.relay_metrics_port is not None:
        metrics.serve(settings.relay_metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = tracing.pod_context(os.environ.get("TRACEPARENT"), os.environ.get("POD_NAME"))
    relay = loop.Relay(settings, expect=expected_detector(os.environ), parent=parent, stop=stop)
    try:
        outcome = relay.run()
    finally:
        provider.force_flush()
    log.info("relay finished: %s", outcome)
    return outcome.exit_code
