"""The embedded run's road to Kafka: the same relay, after a visit's detectors are done.

``shutterline run --kafka`` and ``shutterline demo --kafka`` process a visit as usual, then
write each detector's broadcast record and done marker into the spool (what the pipeline
container does in a pod) and run `loop.Relay` until it has drained them. The demo keeps
its own copy of every packet for its report: it relays hard links of them from a separate
spool, so deleting a delivered packet there leaves the original in place.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shutterline.pipeline import settings as settings_mod
from shutterline.relay import loop, markers

__all__ = ["detector_record", "publish_reports"]


def detector_record(report: Any) -> dict[str, Any]:
    """The broadcast record of one detector from its report (quantities and stage seconds)."""
    return {
        "visit": report.visit,
        "detector": report.detector,
        "status": report.status,
        "reason": report.reason,
        "quantities": dict(report.quantities),
        "stages": dict(report.seconds),
    }


def publish_reports(
    settings: settings_mod.Settings, reports: Sequence[Any], relay_spool: Path | None = None
) -> loop.Outcome:
    """Relay the alerts of finished detectors, then their records; the relay's outcome.

    Parameters
    ----------
    settings
        With ``kafka_bootstrap`` (and topics, registry) set; ``settings.spool`` holds the
        packets the reports name.
    reports
        `shutterline.pipeline.visit.DetectorReport` of each detector.
    relay_spool
        Relay from this directory instead, leaving ``settings.spool`` untouched (packets are
        hard-linked into it).
    """
    spool = Path(relay_spool or settings.spool)
    spool.mkdir(parents=True, exist_ok=True)
    for report in reports:
        if relay_spool is not None:
            for path in report.alert_paths:
                target = spool / Path(path).name
                if not target.exists():
                    os.link(path, target)
        markers.write_metrics(spool, report.visit, report.detector, detector_record(report))
        alerts = len(report.alert_paths) if report.status == "succeeded" else 0
        markers.write_done(spool, report.visit, report.detector, report.status, alerts)
    # A new run over the same spool publishes its detectors again.
    (spool / markers.STATUS).unlink(missing_ok=True)
    relay_settings = dataclasses.replace(settings, spool=spool)
    expect = {(r.visit, r.detector) for r in reports}
    return loop.Relay(relay_settings, expect=expect).run()
