"""Analysis Job + pods -> ``Visit.status.analysis`` and the ``QAWithinLimits`` condition.

Pure, like `core.status.fold`: the same status, Job, pods, limits and clock give the same
result, so the status loop may recompute it after any event or a restart. The QA summary
comes from the analysis container's termination message (docs/architecture.md, "The
analysis pod"): ``{"qa": {name: number}, "report": URI}``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any

from shutterline_operator.core import analysis
from shutterline_operator.core import status as vstatus

__all__ = [
    "CONDITION",
    "UNITS",
    "fold_analysis",
    "outside_limits",
    "termination",
    "with_analysis",
]

CONDITION = "QAWithinLimits"
#: How each QA value is written in a condition message (the analysis pod's units).
UNITS = {
    "fwhm": '"',
    "astromScatter": " mas",
    "zeroPoint": " mag",
    "zeroPointScatter": " mag",
    "limitingMag": " mag",
}
_COUNTS = frozenset({"diaCount"})
_MAX_VALUES = 32
_TEXT = 300
_FINAL = {"Complete": "Succeeded", "SuccessCriteriaMet": "Succeeded"}
_FAILED = ("Failed", "FailureTarget")


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def termination(pod: dict[str, Any]) -> dict[str, Any]:
    """What the pod's terminated analysis container said: ``qa`` (finite numbers only, as
    the CRD's schema holds them), ``report``, ``exitCode``, ``reason``; {} while it runs."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    found: dict[str, Any] = next((s for s in statuses if s.get("name") == analysis.CONTAINER), {})
    terminated = (found.get("state") or {}).get("terminated")
    if not terminated:
        return {}
    record: dict[str, Any] = {"exitCode": int(terminated.get("exitCode", 0))}
    text = str(terminated.get("message") or "").strip()
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        values: dict[str, Any] = parsed["qa"] if isinstance(parsed.get("qa"), dict) else {}
        numbers = [(str(k), _number(v)) for k, v in sorted(values.items())]
        record["qa"] = dict([(k, v) for k, v in numbers if v is not None][:_MAX_VALUES])
        if isinstance(parsed.get("report"), str):
            record["report"] = parsed["report"][:1024]
        reason = str(parsed.get("reason") or "")
    else:
        reason = text.splitlines()[-1] if text else ""
    if not reason and record["exitCode"] != 0:
        reason = f"{terminated.get('reason', 'Error')} (exit code {record['exitCode']})"
    if reason:
        record["reason"] = reason[:_TEXT]
    return record


def _outcome(job: dict[str, Any]) -> tuple[str | None, str]:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond["type"] in _FINAL:
            return "Succeeded", ""
        if cond["type"] in _FAILED:
            return "Failed", str(cond.get("reason") or "")
    return None, ""


def fold_analysis(
    job: dict[str, Any], pods: Sequence[dict[str, Any]], previous: dict[str, Any]
) -> dict[str, Any]:
    """``status.analysis`` from the analysis Job and its pods.

    ``previous`` is the last recorded ``status.analysis``: its QA summary survives the pods.
    ``phase`` is ``Queued`` (suspended, waiting for Kueue), ``Pending``, ``Running``,
    ``Succeeded`` or ``Failed``.
    """
    ordered = sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp", "")))
    entry: dict[str, Any] = {k: v for k, v in previous.items() if k != "phase"}
    entry["jobName"] = job["metadata"]["name"]
    entry["attempts"] = max(len(ordered), int(previous.get("attempts", 0)))
    winner = next((p for p in ordered if (p.get("status") or {}).get("phase") == "Succeeded"), None)
    source = winner or (ordered[-1] if ordered else None)
    if source is not None:
        entry["pod"] = source["metadata"]["name"]
        said = termination(source)
        if not said:  # a new attempt runs: an earlier one's exit no longer describes it
            entry.pop("exitCode", None)
            entry.pop("reason", None)
        entry.update(said)
    jstatus = job.get("status") or {}
    if jstatus.get("startTime"):
        entry["startedAt"] = previous.get("startedAt") or jstatus["startTime"]
    outcome, reason = _outcome(job)
    if outcome is not None:
        entry["phase"] = outcome
        done = jstatus.get("completionTime") or _condition_time(job)
        if done:
            entry["finishedAt"] = done
        if outcome == "Failed":
            entry["reason"] = entry.get("reason") or reason or "the analysis Job failed"
        else:
            entry.pop("reason", None)
    elif (job.get("spec") or {}).get("suspend"):
        entry["phase"] = "Queued"
    elif source is not None and (source.get("status") or {}).get("phase") == "Running":
        entry["phase"] = "Running"
    else:
        entry["phase"] = "Pending"
    return entry


def _condition_time(job: dict[str, Any]) -> str | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond["type"] in (*_FINAL, *_FAILED):
            return str(cond.get("lastTransitionTime") or "") or None
    return None


def _format(name: str, value: float) -> str:
    unit = UNITS.get(name, "")
    if name in _COUNTS:
        return f"{round(value)}{unit}"
    text = f"{value:.2f}" if value == 0 or abs(value) >= 0.1 else f"{value:.3g}"
    return f"{text}{unit}"


def outside_limits(qa: dict[str, Any], limits: dict[str, Any]) -> list[str]:
    """One phrase per QA value outside its limit, e.g. ``fwhm 1.62" > limit 1.40" by 0.22"``.

    ``limits`` maps a QA name to ``{"min": x, "max": y}`` (either may be missing); a value the
    analysis did not report is not judged.
    """
    found = []
    for name in sorted(limits):
        value = _number(qa.get(name))
        if value is None:
            continue
        bounds = limits[name] or {}
        low, high = _number(bounds.get("min")), _number(bounds.get("max"))
        if high is not None and value > high:
            found.append(
                f"{name} {_format(name, value)} > limit {_format(name, high)} "
                f"by {_format(name, value - high)}"
            )
        elif low is not None and value < low:
            found.append(
                f"{name} {_format(name, value)} < limit {_format(name, low)} "
                f"by {_format(name, low - value)}"
            )
    return found


def with_analysis(
    status: dict[str, Any],
    job: dict[str, Any] | None,
    pods: Sequence[dict[str, Any]],
    limits: dict[str, Any],
    now: dt.datetime,
) -> dict[str, Any]:
    """``status`` (a folded Visit status) with ``analysis`` and, once the QA summary is in,
    the ``QAWithinLimits`` condition. ``job`` None: the Job is gone (TTL) or not made yet,
    and what was recorded stays."""
    previous = dict(status.get("analysis") or {})
    if job is None and not previous:
        return status
    entry = fold_analysis(job, pods, previous) if job is not None else previous
    result = {**status, "analysis": entry}
    if entry.get("phase") != "Succeeded" or "qa" not in entry:
        return result
    outside = outside_limits(entry["qa"], limits)
    judged = sorted(set(limits) & set(entry["qa"]))
    if outside:
        reason, message = "OutsideLimits", "; ".join(outside)
    else:
        reason = "WithinLimits"
        message = f"{len(judged)} limited values within limits" if judged else "no limits set"
    result["conditions"] = vstatus.set_condition(
        list(status.get("conditions") or []), CONDITION, not outside, reason, message, now
    )
    return result
