"""What the relay does when a detector is through: its record, its span, the finish status."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from shutterline.relay import markers

__all__ = ["Tally", "detector_record", "publication_span", "quantiles", "status_document"]

_TRACER = trace.get_tracer("shutterline.relay")


@dataclasses.dataclass
class Tally:
    """Deliveries of one detector's packets by this relay process (Unix seconds)."""

    acked: int = 0
    bytes: int = 0
    first_delivery: float | None = None
    last_delivery: float | None = None

    def add(self, size: int, when: float) -> None:
        """Count one delivered packet of ``size`` bytes at ``when``."""
        self.acked += 1
        self.bytes += size
        if self.first_delivery is None:
            self.first_delivery = when
        self.last_delivery = when


def detector_record(spool: Path, key: tuple[int, int], tally: Tally) -> bytes:
    """The metrics-topic message of one detector: the pipeline's record, telemetry, relay.

    The pipeline's ``<visit>_<detector>.metrics.json`` is the body; the done marker goes under
    ``"done"``, the telemetry sidecar's summary (if it left one) under ``"telemetry"`` and
    this relay's deliveries under ``"relay"``.
    """
    visit, detector = key
    record = markers.read_json(spool / f"{visit}_{detector}.metrics.json")
    document: dict[str, Any] = dict(record) if isinstance(record, dict) else {}
    document.setdefault("visit", visit)
    document.setdefault("detector", detector)
    document["done"] = markers.read_json(spool / f"{visit}_{detector}.done")
    telemetry = markers.read_json(spool / markers.TELEMETRY)
    if telemetry is not None:
        document["telemetry"] = telemetry
    document["relay"] = dataclasses.asdict(tally)
    return json.dumps(document, sort_keys=True, default=str).encode()


def publication_span(
    key: tuple[int, int], tally: Tally, parent: otel_context.Context | None, topic: str
) -> None:
    """One span from the first to the last delivery of the detector's alerts."""
    now = time.time()
    start = tally.first_delivery if tally.first_delivery is not None else now
    end = tally.last_delivery if tally.last_delivery is not None else start
    visit, detector = key
    span = _TRACER.start_span(
        f"publish alerts {visit}/{detector}",
        context=parent,
        start_time=int(start * 1e9),
        attributes={
            "visit": visit,
            "detector": detector,
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "shutterline.alerts.delivered": tally.acked,
            "shutterline.alerts.bytes": tally.bytes,
        },
    )
    span.end(end_time=int(end * 1e9))


def status_document(
    state: str,
    reason: str,
    tallies: dict[tuple[int, int] | None, Tally],
    published: set[tuple[int, int]],
    counters: dict[str, int],
) -> dict[str, Any]:
    """``relay.status.json``: the contract fields plus per-detector deliveries."""
    firsts = [t.first_delivery for t in tallies.values() if t.first_delivery is not None]
    lasts = [t.last_delivery for t in tallies.values() if t.last_delivery is not None]
    return {
        "state": state,
        "reason": reason,
        "acked": sum(t.acked for t in tallies.values()),
        "first_delivery": min(firsts) if firsts else None,
        "last_delivery": max(lasts) if lasts else None,
        "published": sorted(f"{v}_{d}" for v, d in published),
        "detectors": {
            "unnamed" if k is None else f"{k[0]}_{k[1]}": dataclasses.asdict(t)
            for k, t in tallies.items()
        },
        **counters,
    }


def quantiles(values: Collection[float]) -> dict[str, float] | None:
    """Median, 99th percentile and maximum of ``values`` (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p99": pick(0.99), "max": ordered[-1]}
