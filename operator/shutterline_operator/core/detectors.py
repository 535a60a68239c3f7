"""One detector's state from its Job index and pods: what ``status.detectors[d]`` holds."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "INDEX_ANNOTATION",
    "detector_state",
    "format_indexes",
    "parse_indexes",
    "termination_record",
]

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
_COUNTS = ("diaSources", "alerts")
_TIMES = ("rawArrivedAt", "lastAlertAt")
_REASON_CHARS = 300


def parse_indexes(text: str | None) -> set[int]:
    """Job ``completedIndexes``/``failedIndexes`` (``"1,3-5"``) as a set of indexes."""
    found: set[int] = set()
    for part in (text or "").split(","):
        if not part.strip():
            continue
        low, _, high = part.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


def format_indexes(numbers: Iterable[int]) -> str:
    """``numbers`` as sorted ranges, the inverse of `parse_indexes`: {1, 3, 4, 5} -> "1,3-5"."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


def _statuses(pod: dict[str, Any], field: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (pod.get("status") or {}).get(field) or []}


def termination_record(pod: dict[str, Any]) -> dict[str, Any]:
    """What the pod's last terminated container said (pipeline first, then precache).

    The pipeline writes JSON (docs/architecture.md); anything else, such as a log tail
    (``FallbackToLogsOnError``), becomes the ``reason``.
    """
    mains, inits = _statuses(pod, "containerStatuses"), _statuses(pod, "initContainerStatuses")
    for status in (mains.get("pipeline"), inits.get("precache")):
        terminated = ((status or {}).get("state") or {}).get("terminated")
        if not terminated or (status is inits.get("precache") and terminated["exitCode"] == 0):
            continue
        record: dict[str, Any] = {"exitCode": int(terminated.get("exitCode", 0))}
        text = str(terminated.get("message") or "").strip()
        try:
            parsed = json.loads(text) if text else {}
        except ValueError:
            parsed = text
        if isinstance(parsed, dict):
            record.update({k: int(parsed[k]) for k in _COUNTS if k in parsed})
            record.update({k: str(parsed[k]) for k in _TIMES if parsed.get(k)})
            if isinstance(parsed.get("stages"), dict):
                record["stages"] = {k: float(v) for k, v in parsed["stages"].items()}
            reason = parsed.get("reason") or ""
        else:
            reason = str(parsed).strip().splitlines()[-1] if parsed else ""
        if not reason and record["exitCode"] != 0:
            reason = f"{terminated.get('reason', 'Error')} (exit code {record['exitCode']})"
        if reason:
            record["reason"] = str(reason)[:_REASON_CHARS]
        return record
    return {}


def _running_state(pod: dict[str, Any]) -> str:
    """Caching / WaitingForRaws / Processing of a pod that has not finished."""
    pipeline = _statuses(pod, "containerStatuses").get("pipeline") or {}
    state = pipeline.get("state") or {}
    if "running" in state:
        return "Processing" if pipeline.get("ready") else "WaitingForRaws"
    if "terminated" in state:
        return "Processing"
    inits = _statuses(pod, "initContainerStatuses")
    started = any("waiting" not in (s.get("state") or {"waiting": {}}) for s in inits.values())
    return (
        "Caching" if started or (pod.get("status") or {}).get("phase") == "Running" else "Pending"
    )


def detector_state(
    index: int,
    pods: Sequence[dict[str, Any]],
    completed: set[int],
    failed: set[int],
    previous: dict[str, Any],
) -> dict[str, Any]:
    """The status entry of the detector at completion ``index``.

    ``pods`` are that index's pods (any order); ``previous`` its last recorded entry, whose
    counts survive when the pods are already gone.
    """
    ordered = sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp", "")))
    entry: dict[str, Any] = {k: v for k, v in previous.items() if k != "state"}
    entry["index"] = index
    entry["attempts"] = max(len(ordered), int(previous.get("attempts", 0)))
    latest = ordered[-1] if ordered else None
    winner = next((p for p in ordered if (p.get("status") or {}).get("phase") == "Succeeded"), None)
    if index in completed or winner is not None:
        source = winner or latest
        state = "Succeeded"
    elif index in failed:
        source, state = latest, "Failed"
    elif latest is None:
        source, state = None, "Pending"
    elif (latest.get("status") or {}).get("phase") == "Failed":
        source, state = latest, "Retrying"
    else:
        source, state = latest, _running_state(latest)
    if source is not None:
        entry["pod"] = source["metadata"]["name"]
        entry.update(termination_record(source))
    if state == "Succeeded":
        entry.pop("reason", None)
    entry["state"] = state
    return entry
