"""One trace per visit: every stage of every detector is a span under the visit's root."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shutterline.pipeline import visit

pytestmark = [pytest.mark.slow]

STAGES = {
    "isr",
    "characterize",
    "calibrate",
    "template",
    "subtract",
    "dia_detect",
    "solar_system",
    "association",
    "alerts",
    "store",
}


def test_detector_stages_reach_the_trace_receiver_under_the_visit(
    small_night, otlp_receiver, tmp_path: Path
) -> None:
    entry = small_night.visits[0]
    settings = small_night.settings(tmp_path, otlp_endpoint=otlp_receiver.endpoint, direct=True)
    reports = visit.run_visit(settings, entry["visit"], entry["detectors"], jobs=2)
    assert all(r.status == "succeeded" for r in reports), [r.reason for r in reports]
    spans = [s for s in otlp_receiver.spans() if s["name"] == f"visit {entry['visit']}"]
    assert len(spans) == 1
    root = spans[0]
    everything = _whole_trace(otlp_receiver, root["trace_id"], 2 + 11 * len(reports))
    by_id = {s["span_id"]: s for s in everything}
    for detector in entry["detectors"]:
        (det_span,) = [s for s in everything if s["name"] == f"detector {detector}"]
        assert det_span["parent_span_id"] == root["span_id"]
        children = {s["name"] for s in everything if s["parent_span_id"] == det_span["span_id"]}
        assert children >= STAGES, STAGES - children
    assert all(s["trace_id"] == root["trace_id"] for s in by_id.values())


def _whole_trace(receiver, trace_id: str, at_least: int, timeout: float = 30.0) -> list[dict]:
    """The receiver indexes spans asynchronously: wait until the trace has them all."""
    deadline = time.monotonic() + timeout
    while True:
        spans = receiver.spans(trace_id)
        if len(spans) >= at_least or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)
