"""The per-detector part of ``Visit.status``, in the compact shape or the full map, and back.

Every write of a Visit (its status or its phase label) costs the API server in proportion to
the object and its managed fields: with a full entry for each of 62 detectors a finished
Visit is 40 kB, half of it managed fields, and a write of it costs the server about six times
the CPU of a Visit without them (docs/operator.md, "Status size"). The compact shape keeps
what people read: the detectors in each state as ranges of detector numbers (like a Job's
``completedIndexes``), each detector's counts as lists in completion-index order (a list is
one managed field, not one per detector), and full entries only for the detectors worth a
look: failed, retrying, or needing more than one attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shutterline_operator.core import detectors as dets

__all__ = ["SHAPES", "decode", "encode", "notable"]

#: ``compact`` (the default) or ``map``: every detector's full entry (the shape before).
SHAPES = ("compact", "map")
_FINISHED = ("Succeeded", "Failed")
#: Entry field -> the status list holding it for every detector.
_COUNTS = (("alerts", "detectorAlerts"), ("diaSources", "detectorDiaSources"))


def notable(entry: dict[str, Any]) -> bool:
    """Whether a detector keeps its full entry in the compact shape."""
    return entry["state"] in ("Failed", "Retrying") or int(entry.get("attempts", 0)) > 1


def encode(
    entries: dict[str, dict[str, Any]], detectors: Sequence[int], shape: str
) -> dict[str, Any]:
    """The status fields holding ``entries`` (key: detector number) in ``shape``.

    ``detectors`` are the visit's, in completion-index order (the order of the lists).
    """
    if shape == "map":
        return {"detectors": entries}
    if shape != "compact":
        known = ", ".join(SHAPES)
        raise ValueError(f"SHUTTERLINE_STATUS_DETECTORS={shape!r}: not one of {known}")
    by_state: dict[str, list[int]] = {}
    for key, entry in entries.items():
        by_state.setdefault(entry["state"], []).append(int(key))
    ranges = {state: dets.format_indexes(numbers) for state, numbers in by_state.items()}
    out: dict[str, Any] = {"detectorStates": ranges}
    if any(e["state"] in _FINISHED for e in entries.values()):
        for field, name in _COUNTS:
            out[name] = [int(entries[str(d)].get(field, 0)) for d in detectors]
    kept = {key: entry for key, entry in entries.items() if notable(entry)}
    if kept:
        out["detectors"] = kept
    return out


def decode(status: dict[str, Any], detectors: Sequence[int]) -> dict[str, dict[str, Any]]:
    """The per-detector entries as far as ``status`` (either shape) recorded them: what a
    fold starts from, so counts survive the pods (a finished Job's are soon gone)."""
    kept = status.get("detectors") or {}
    states: dict[int, str] = {}
    for state, text in (status.get("detectorStates") or {}).items():
        states.update(dict.fromkeys(dets.parse_indexes(text), state))
    entries: dict[str, dict[str, Any]] = {}
    for index, detector in enumerate(detectors):
        key, state = str(detector), states.get(detector)
        if key in kept:
            entries[key] = dict(kept[key])
        elif state is not None:
            entry: dict[str, Any] = {"index": index, "state": state}
            if state in _FINISHED:
                entry["attempts"] = 1
                for field, name in _COUNTS:
                    values = status.get(name) or []
                    if index < len(values):
                        entry[field] = int(values[index])
            entries[key] = entry
    return entries
