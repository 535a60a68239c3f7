"""The built-in queue at work: release suspended Jobs as `core.queue.plan` says, time out
those whose deadline passed while they waited; with Kueue, only say what they wait for."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

from shutterline_operator.adapters import metrics
from shutterline_operator.core import analysis, queue, timing
from shutterline_operator.core import status as vstatus
from shutterline_operator.engine import analysis as step
from shutterline_operator.engine import cache as vcache
from shutterline_operator.engine import reconcile

__all__ = ["admit"]

_DEFAULT_LIMIT = 1000


def _owner(job: dict[str, Any]) -> str | None:
    for ref in job["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Visit":
            return str(ref["name"])
    return None


def _pools(
    cache: vcache.Cache,
) -> dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """(namespace, instrument) -> [(Job, Visit)] for every Job whose Visit is known."""
    pools: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    with cache.lock:
        for (namespace, _), job in cache.jobs.items():
            owner = _owner(job)
            visit = cache.visits.get((namespace, owner)) if owner else None
            if visit is None or job["metadata"].get("deletionTimestamp"):
                continue
            pool = (namespace, str(visit["spec"]["instrument"]))
            members = pools.setdefault(pool, [])
            if not analysis.is_analysis_job(job):  # those have a gate of their own
                members.append((job, visit))
    return pools


def admit(rec: reconcile.Reconciler, now: dt.datetime) -> None:
    """One pass over every pool: releases, time-outs and queue slots."""
    slots: dict[vcache.Key, vstatus.QueueSlot] = {}
    for (namespace, instrument), members in _pools(rec.cache).items():
        config = rec.cache.config_for(namespace, instrument) or {"spec": {}}
        queueing = config["spec"].get("queueing") or {}
        waiting = [(j, v) for j, v in members if (j.get("spec") or {}).get("suspend")]
        late = {id(j) for j, v in waiting if timing.deadline_at(v["spec"]) <= now}
        for job, visit in waiting:
            if id(job) in late:
                _time_out(rec, job, visit, now)
        waiting = [(j, v) for j, v in waiting if id(j) not in late]
        if queueing.get("mode") == "kueue":
            reason = f"waiting for admission by Kueue (LocalQueue {queueing.get('queueName')})"
            for position, (_, visit) in enumerate(waiting, 1):
                slots[_key(visit)] = vstatus.QueueSlot(position, reason)
            metrics.QUEUE_DEPTH.labels(namespace, instrument).set(len(waiting))
            continue
        limit = int((config["spec"].get("concurrency") or {}).get("detectors", _DEFAULT_LIMIT))
        entries, visits = [], {}
        for job, visit in members:
            if id(job) in late:
                continue
            entry = queue.entry_from_job(job, int(visit["spec"].get("priority", 0)))
            if entry is not None:
                entries.append(entry)
                visits[entry.key] = visit
        plan = queue.plan(entries, limit)
        for job_key in plan.release:
            _release(rec, job_key, visits[job_key], now)
        released = [
            dataclasses.replace(e, suspended=False, running=e.demand)
            if e.key in plan.release
            else e
            for e in entries
        ]
        prompt_jobs = [j for j, _ in members]
        step.admit(
            rec.api, rec.cache, (namespace, instrument), config, limit, released, prompt_jobs
        )
        for job_key, slot in plan.waiting.items():
            slots[_key(visits[job_key])] = slot
        metrics.QUEUE_DEPTH.labels(namespace, instrument).set(len(plan.waiting))
    for key in slots.keys() | rec.slots.keys():
        if slots.get(key) != rec.slots.get(key):
            rec.cache.mark(key)
    rec.slots = slots


def _key(visit: dict[str, Any]) -> vcache.Key:
    return (str(visit["metadata"]["namespace"]), str(visit["metadata"]["name"]))


def _release(
    rec: reconcile.Reconciler, job_key: vcache.Key, visit: dict[str, Any], now: dt.datetime
) -> None:
    """Unsuspend a Job with what is left of its deadline (its clock restarts on release)."""
    remaining = (timing.deadline_at(visit["spec"]) - now).total_seconds()
    patch = {"spec": {"suspend": False, "activeDeadlineSeconds": max(1, math.ceil(remaining))}}
    updated = rec.api.patch("jobs", job_key[0], job_key[1], patch)
    if updated is not None:
        rec.cache.put_job(updated)


def _time_out(
    rec: reconcile.Reconciler, job: dict[str, Any], visit: dict[str, Any], now: dt.datetime
) -> None:
    """The deadline passed while the Visit waited: delete its Job, mark it TimedOut."""
    namespace, name = _key(visit)
    rec.api.delete("jobs", namespace, job["metadata"]["name"])
    rec.cache.put_job(job, deleted=True)
    message = "deadline passed while waiting in the queue"
    conditions = vstatus.set_condition(
        (visit.get("status") or {}).get("conditions") or [],
        "Finished",
        True,
        "TimedOut",
        message,
        now,
    )
    status = {
        "phase": "TimedOut",
        "reason": "DeadlineExceeded",
        "message": message,
        "finishedAt": timing.format_time(now),
        "conditions": conditions,
    }
    updated = rec.api.patch("visits", namespace, name, {"status": status}, status=True)
    if updated is not None:
        rec.cache.put_visit(updated)
    rec.publish_phase(visit, status)
