"""Job + pods -> ``Visit.status``, shaped like an Argo Workflow's (docs/operator.md).

`fold` is pure: the same Visit, Job, pods and clock always give the same status, so the
operator can recompute it after any event (or a restart) and patch only what changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from shutterline_operator.core import compact, timing, tracecontext
from shutterline_operator.core import detectors as dets

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "URGENT",
    "QueueSlot",
    "fold",
    "progress_step",
    "set_condition",
    "trace_id",
    "urgent",
    "worth",
]

TERMINAL = ("Succeeded", "PartiallySucceeded", "Failed", "Rejected", "TimedOut")
ACTIVE = ("Caching", "WaitingForRaws", "Processing")
#: Status fields patched as soon as they change; a patch of only the others (progress and
#: counts, per-detector states, queue position and message, condition times) waits for the
#: detail interval: progress moves once per detector, which would be one patch each.
URGENT = frozenset({"phase", "reason", "finishedAt"})
#: Details worth a patch on their own (after the detail interval): a detector failing or
#: retrying, a new queue slot. Other details ride along, or wait for a progress step.
_NOTABLE = frozenset({"detectors", "queue"})
_FINAL = {
    "Complete": "Complete",
    "SuccessCriteriaMet": "Complete",
    "Failed": "Failed",
    "FailureTarget": "Failed",
}


@dataclasses.dataclass(frozen=True)
class QueueSlot:
    """Where a waiting Visit stands in the built-in queue, and why it waits."""

    position: int
    reason: str


def trace_id(visit: dict[str, Any]) -> str:
    """The trace id of the Visit's root span (`tracecontext.traceparent_of`)."""
    return tracecontext.traceparent_of(visit).split("-")[1]


def urgent(patch: dict[str, Any]) -> bool:
    """Whether a status merge patch changes an `URGENT` field."""
    return bool(patch.keys() & URGENT)


def progress_step(progress: str | None, step: int) -> int:
    """The ``step``-percent step of ``progress`` ("done/total"); ``step`` 0: every change."""
    done, _, total = (progress or "0/0").partition("/")
    if step <= 0:
        return int(done or 0)
    return int(done or 0) * 100 // max(int(total or 0), 1) // step


def worth(old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any], step: int) -> bool:
    """Whether a patch of details only (not `urgent`) from status ``old`` to ``new`` is worth
    sending after the detail interval: progress entered a new ``step``-percent step (every
    change when ``step`` is 0), or a `_NOTABLE` field changed. Otherwise it can wait longer."""
    moved = progress_step(old.get("progress"), step) != progress_step(new.get("progress"), step)
    return step <= 0 or moved or bool(patch.keys() & _NOTABLE)


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    status: bool,
    reason: str,
    message: str,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """``conditions`` with ``kind`` set; its time moves only when its status changes."""
    text = "True" if status else "False"
    old = next((c for c in conditions if c["type"] == kind), None)
    since = old["lastTransitionTime"] if old and old["status"] == text else timing.format_time(now)
    entry = {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    return [*(c for c in conditions if c["type"] != kind), entry]


def _job_outcome(job: dict[str, Any]) -> tuple[str | None, str, str | None]:
    """(``Complete``/``Failed``/None, reason, finished time) from the Job's conditions."""
    found: dict[str, tuple[str, str | None]] = {}
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond["type"] in _FINAL:
            final = _FINAL[cond["type"]]
            if final not in found or cond["type"] in ("Complete", "Failed"):
                found[final] = (str(cond.get("reason", "")), cond.get("lastTransitionTime"))
    for final in ("Failed", "Complete"):
        if final in found:
            reason, when = found[final]
            return final, reason, (job.get("status") or {}).get("completionTime") or when
    return None, "", None


def _phase(
    job: dict[str, Any], entries: dict[str, dict[str, Any]], before: str | None
) -> tuple[str, str]:
    """The Visit's phase and the Job's own reason for it. A running visit's phase never moves
    back (from ``before``): a pod still caching beside finished ones does not turn a
    Processing visit back to Caching (a phase change costs a status and a label patch and an
    Event)."""
    phase, reason = _job_phase(job, entries)
    order = ("Pending", *ACTIVE)
    if phase in order and before in ACTIVE and order.index(before) > order.index(phase):
        return before, reason
    return phase, reason


def _job_phase(job: dict[str, Any], entries: dict[str, dict[str, Any]]) -> tuple[str, str]:
    outcome, reason, _ = _job_outcome(job)
    states = [e["state"] for e in entries.values()]
    if outcome is not None:
        if reason == "DeadlineExceeded":
            return "TimedOut", reason
        if "Succeeded" in states and ("Failed" in states or outcome == "Failed"):
            return "PartiallySucceeded", reason
        return ("Succeeded" if outcome == "Complete" else "Failed"), reason
    if (job.get("spec") or {}).get("suspend"):
        return "Queued", ""
    for phase in ("Processing", "WaitingForRaws", "Caching"):
        if phase in states:
            return phase, ""
    if any(s in ("Succeeded", "Failed", "Retrying") for s in states):
        return "Processing", ""
    return "Pending", ""


def _message(phase: str, entries: dict[str, dict[str, Any]], queue: QueueSlot | None) -> str:
    total = len(entries)
    done = sum(e["state"] in ("Succeeded", "Failed") for e in entries.values())
    alerts = sum(int(e.get("alerts", 0)) for e in entries.values())
    failed = [(d, e) for d, e in entries.items() if e["state"] == "Failed"]
    if phase == "Queued":
        return queue.reason if queue else "waiting for admission"
    if phase == "Succeeded":
        return f"{total} detectors, {alerts} alerts"
    if phase == "TimedOut":
        return f"deadline exceeded with {done}/{total} detectors done"
    if failed:
        detector, entry = failed[0]
        why = entry.get("reason") or "failed"
        return f"{len(failed)}/{total} detectors failed; detector {detector}: {why}"
    return f"{done}/{total} detectors done"


def _latency(
    spec: dict[str, Any], entries: dict[str, dict[str, Any]], previous: dict[str, Any]
) -> dict[str, Any]:
    """The visit's last alert (kept in the status: the compact shape drops the detectors')
    and the latency from shutter close to it."""
    texts = [str(e["lastAlertAt"]) for e in entries.values() if e.get("lastAlertAt")]
    texts += [str(previous["lastAlertAt"])] if previous.get("lastAlertAt") else []
    if not texts:
        return {}
    last = max(texts, key=timing.parse_time)
    seconds = (timing.parse_time(last) - timing.shutter_close(spec)).total_seconds()
    return {"lastAlertAt": last, "latencySeconds": round(seconds, 3), "latency": f"{seconds:.1f}s"}


def _entries(
    visit: dict[str, Any],
    job: dict[str, Any],
    pods: Sequence[dict[str, Any]],
    detectors: Sequence[int],
) -> dict[str, dict[str, Any]]:
    status = job.get("status") or {}
    completed = dets.parse_indexes(status.get("completedIndexes"))
    failed = dets.parse_indexes(status.get("failedIndexes"))
    by_index: dict[int, list[dict[str, Any]]] = {}
    for pod in pods:
        index = (pod["metadata"].get("annotations") or {}).get(dets.INDEX_ANNOTATION)
        if index is not None:
            by_index.setdefault(int(index), []).append(pod)
    previous = compact.decode(visit.get("status") or {}, detectors)
    outcome, reason, _ = _job_outcome(job)
    entries = {}
    for index, detector in enumerate(detectors):
        key = str(detector)
        entry = dets.detector_state(
            index, by_index.get(index, []), completed, failed, previous.get(key) or {}
        )
        if outcome is not None and entry["state"] not in ("Succeeded", "Failed"):
            entry["state"] = "Failed"
            entry.setdefault("reason", reason or "the Job ended before this detector")
        entries[key] = entry
    return entries


def fold(
    visit: dict[str, Any],
    job: dict[str, Any] | None,
    pods: Sequence[dict[str, Any]],
    detectors: Sequence[int],
    now: dt.datetime,
    queue: QueueSlot | None = None,
    shape: str = "compact",
) -> dict[str, Any]:
    """The whole ``status`` of ``visit`` from its Job (None: not created yet) and its pods.

    Parameters
    ----------
    detectors
        The visit's detectors; completion index ``i`` is ``detectors[i]``.
    queue
        The built-in queue's slot while the Job is suspended.
    shape
        How the per-detector part is written (`compact.SHAPES`).
    """
    previous = dict(visit.get("status") or {})
    gone = job is None or bool(job["metadata"].get("deletionTimestamp"))
    if previous.get("phase") in TERMINAL and (gone or previous.get("phase") == "Rejected"):
        return previous
    if job is None:
        return {
            **previous,
            "phase": previous.get("phase") or "Pending",
            "progress": f"0/{len(detectors)}",
        }
    entries = _entries(visit, job, pods, detectors)
    phase, job_reason = _phase(job, entries, previous.get("phase"))
    done = sum(e["state"] in ("Succeeded", "Failed") for e in entries.values())
    jstatus = job.get("status") or {}
    status: dict[str, Any] = {
        "phase": phase,
        "progress": f"{done}/{len(entries)}",
        "message": _message(phase, entries, queue),
        "jobName": job["metadata"]["name"],
        **compact.encode(entries, detectors, shape),
        "alerts": sum(int(e.get("alerts", 0)) for e in entries.values()),
        "diaSources": sum(int(e.get("diaSources", 0)) for e in entries.values()),
        **_latency(visit["spec"], entries, previous),
    }
    if job_reason:
        status["reason"] = job_reason
    if jstatus.get("startTime"):
        status["startedAt"] = previous.get("startedAt") or jstatus["startTime"]
    finished = _job_outcome(job)[2]
    if finished:
        status["finishedAt"] = finished
    status["traceId"] = trace_id(visit)
    if queue is not None and phase == "Queued":
        status["queue"] = {"position": queue.position, "reason": queue.reason}
    status["conditions"] = _conditions(previous.get("conditions") or [], phase, status, now)
    return status


def _conditions(
    conditions: list[dict[str, Any]], phase: str, status: dict[str, Any], now: dt.datetime
) -> list[dict[str, Any]]:
    conditions = set_condition(conditions, "Validated", True, "Valid", "", now)
    admitted = phase != "Queued"
    conditions = set_condition(
        conditions,
        "Admitted",
        admitted,
        "Released" if admitted else "Queued",
        "" if admitted else status["message"],
        now,
    )
    finished = phase in TERMINAL
    return set_condition(
        conditions, "Finished", finished, phase if finished else "Running", status["message"], now
    )
