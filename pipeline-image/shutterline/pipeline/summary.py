"""The embedded run's broadcast record: a table for people and a JSON summary for tools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_table", "to_json"]

#: Stages shown as columns of the table, in pipeline order.
TABLE_STAGES = (
    "precache",
    "load_inputs",
    "isr",
    "characterize",
    "calibrate",
    "template",
    "subtract",
    "dia_detect",
    "association",
    "solar_system",
    "alerts",
    "store",
)


def to_json(reports: Sequence[Any]) -> list[dict[str, Any]]:
    """One dict per detector: status, reason, seconds per stage, broadcast quantities."""
    return [
        {
            "visit": r.visit,
            "detector": r.detector,
            "status": r.status,
            "reason": r.reason,
            "seconds": r.seconds,
            "quantities": r.quantities,
            "alerts": len(r.alert_paths),
        }
        for r in reports
    ]


def format_table(reports: Sequence[Any], extra: dict[tuple[int, int], str] | None = None) -> str:
    """A fixed-width table: visit, detector, status, DIA sources, alerts, seconds per stage.

    ``extra`` adds a column (for example truth matching in the demo) keyed by (visit, detector).
    """
    stages = [s for s in TABLE_STAGES if any(s in r.seconds for r in reports)]
    head = [
        "visit",
        "det",
        "status",
        "dia",
        "alerts",
        *((extra and ["truth"]) or []),
        *stages,
        "total",
    ]
    rows = [head]
    for r in reports:
        cells = [
            str(r.visit),
            str(r.detector),
            r.status,
            str(r.quantities.get("dia_sources", "-")),
            str(len(r.alert_paths)),
        ]
        if extra is not None:
            cells.append(extra.get((r.visit, r.detector), "-"))
        cells += [f"{r.seconds[s]:.2f}" if s in r.seconds else "-" for s in stages]
        cells.append(f"{sum(r.seconds.values()):.2f}")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    failures = [
        f"  v{r.visit} d{r.detector}: {r.reason}" for r in reports if r.status != "succeeded"
    ]
    return "\n".join(lines + (["failures:", *failures] if failures else []))
