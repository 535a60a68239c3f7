"""Per-stage timing and resource figures of a visit, from its detectors' metrics records.

A prompt pod's record on the metrics topic (`shutterline.pipeline.records.PodResult.metrics`,
extended by the relay with ``done``, ``telemetry`` and ``relay``) carries the stage seconds,
the critical path from the raw landing to the last alert, and the telemetry sidecar's
summary (CPU seconds, peak RSS, bytes read and written).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["detector_timing", "visit_timing"]


def _unix(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when.timestamp()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and np.isfinite(value) else None


def detector_timing(record: Mapping[str, Any], shutter_close: float | None) -> dict[str, Any]:
    """The timing figures of one detector's metrics record.

    ``shutter_close`` (unix seconds) gives ``latencySeconds``: from the end of the exposure
    to the detector's last alert, the quantity the 60 s requirement bounds.
    """
    telemetry = record.get("telemetry") or {}
    last = _unix(record.get("lastAlertAt"))
    latency = None if last is None or shutter_close is None else last - shutter_close
    return {
        "status": record.get("status"),
        "criticalPathSeconds": _number(record.get("criticalPathSeconds")),
        "latencySeconds": latency,
        "stageSeconds": _number(record.get("stageSeconds")),
        "stages": {k: float(v) for k, v in (record.get("stages") or {}).items()},
        "cpuSeconds": _number(telemetry.get("cpu_s")),
        "peakRssBytes": _number(telemetry.get("peak_rss_bytes")),
        "readBytes": _number(telemetry.get("read_bytes")),
        "writeBytes": _number(telemetry.get("write_bytes")),
    }


def _maximum(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def visit_timing(detectors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The visit's figures from its detectors' `detector_timing`: the slowest detector sets
    the latency; per stage the median and maximum over detectors; resources summed."""
    stage_names = sorted({k for d in detectors for k in d.get("stages", {})})
    stages = {}
    for name in stage_names:
        values = [d["stages"][name] for d in detectors if name in d.get("stages", {})]
        stages[name] = {"median": float(np.median(values)), "max": float(max(values))}
    cpu = [d["cpuSeconds"] for d in detectors if d.get("cpuSeconds") is not None]
    return {
        "detectorsWithRecords": len(detectors),
        "criticalPathSeconds": _maximum([d.get("criticalPathSeconds") for d in detectors]),
        "latencySeconds": _maximum([d.get("latencySeconds") for d in detectors]),
        "stages": stages,
        "cpuSeconds": float(sum(cpu)) if cpu else None,
        "peakRssBytes": _maximum([d.get("peakRssBytes") for d in detectors]),
    }
