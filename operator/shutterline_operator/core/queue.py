"""The built-in queue: which suspended Jobs to release, in priority-then-time order, while a
limit on running detectors allows; where every other waiting Visit stands; and how often a
waiting Visit's status follows its place (`settle`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from shutterline_operator.core import detectors as dets
from shutterline_operator.core import status as vstatus

__all__ = ["POSITION_POLICIES", "Entry", "Plan", "entry_from_job", "plan", "settle", "step"]

#: How a waiting Visit's reported slot follows the queue, cheapest last (see `step`).
POSITION_POLICIES = ("exact", "coarse", "phase")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One visit's Job as the queue sees it.

    ``demand`` is how many detectors it runs at once when released; ``running`` how many it
    occupies now (0 while suspended or finished).
    """

    key: tuple[str, str]
    priority: int
    created: str
    demand: int
    suspended: bool
    running: int


@dataclasses.dataclass(frozen=True)
class Plan:
    """Jobs to release now and the slot of each one left waiting."""

    release: list[tuple[str, str]]
    waiting: dict[tuple[str, str], vstatus.QueueSlot]


def entry_from_job(job: dict[str, Any], priority: int) -> Entry | None:
    """The queue entry of ``job``; None once it has finished (it holds no capacity)."""
    meta, spec, status = job["metadata"], job.get("spec") or {}, job.get("status") or {}
    for cond in status.get("conditions") or []:
        finished = ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")
        if cond["type"] in finished and cond.get("status") == "True":
            return None
    completions = int(spec.get("completions") or 1)
    parallelism = min(completions, int(spec.get("parallelism") or completions))
    done = len(dets.parse_indexes(status.get("completedIndexes")))
    done += len(dets.parse_indexes(status.get("failedIndexes")))
    suspended = bool(spec.get("suspend"))
    running = 0 if suspended else min(parallelism, max(completions - done, 0))
    return Entry(
        (str(meta["namespace"]), str(meta["name"])),
        priority,
        str(meta.get("creationTimestamp", "")),
        parallelism,
        suspended,
        running,
    )


def plan(entries: Iterable[Entry], limit: int) -> Plan:
    """Release the head of the queue while it fits under ``limit`` running detectors.

    Order is priority (higher first), then creation time, then name. The queue is strict:
    a large Visit at the head is not overtaken by smaller ones behind it (no starvation); a
    Visit larger than the whole limit runs alone once nothing else is running.
    """
    entries = list(entries)
    used = sum(e.running for e in entries)
    waiting = sorted(
        (e for e in entries if e.suspended), key=lambda e: (-e.priority, e.created, e.key)
    )
    release: list[tuple[str, str]] = []
    slots: dict[tuple[str, str], vstatus.QueueSlot] = {}
    blocked = False
    for entry in waiting:
        fits = used + entry.demand <= limit or used == 0
        if not blocked and fits:
            release.append(entry.key)
            used += entry.demand
            continue
        blocked = True
        position = len(slots) + 1
        slots[entry.key] = vstatus.QueueSlot(
            position,
            f"queued at position {position}: {used}/{limit} detectors running, "
            f"this visit needs {entry.demand}",
        )
    return Plan(release, slots)


def step(position: int, policy: str) -> int:
    """The step of queue ``position`` under ``policy``: a new step is worth a status patch.

    ``exact``: every position. ``coarse``: powers of two (1, 2-3, 4-7, 8-15, ...), so a
    Visit that starts at 500 is re-reported eight times on its way to the head, and
    the position it shows is never more than twice the true one while the queue drains.
    ``phase``: one step; the slot stays as it was when the Visit became ``Queued``.
    """
    if policy == "exact":
        return position
    if policy == "coarse":
        return 1 << (max(position, 1).bit_length() - 1)
    if policy == "phase":
        return 0
    raise ValueError(f"queue position policy {policy!r} is not one of {POSITION_POLICIES}")


def settle(
    reported: vstatus.QueueSlot | None, fresh: vstatus.QueueSlot, policy: str
) -> vstatus.QueueSlot:
    """The slot to report now: ``fresh``, unless ``reported`` (the one in the status) is in
    the same `step`, when patching would only move the position (or the running count of the
    reason) within it. Under ``exact`` any change is reported."""
    if reported is None or reported == fresh:
        return fresh
    if policy == "exact" or step(fresh.position, policy) != step(reported.position, policy):
        return fresh
    return reported
