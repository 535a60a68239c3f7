"""The analysis step of a Visit's status fold: launch its analysis Job once the prompt Job
has finished, fold that Job into ``status.analysis``, announce its end with an Event.

Idempotent like the prompt Job's creation: the Job's name is a function of the Visit's, a
409 means an earlier run (or a restarted operator) made it, and a Visit whose status records
an analysis never gets a second one, even after its Job's TTL has removed it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from shutterline_operator.adapters import kube
from shutterline_operator.core import analysis, qa, queue
from shutterline_operator.engine import cache as vcache

__all__ = ["admit", "announce", "fold", "view"]

log = logging.getLogger("shutterline.operator")


def view(
    cache: vcache.Cache, visit: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The Visit's analysis Job (only if this very Visit owns it) and the Job's pods."""
    namespace = str(visit["metadata"]["namespace"])
    key = (namespace, analysis.job_name(str(visit["metadata"]["name"])))
    with cache.lock:
        job = cache.jobs.get(key)
        pods = list(cache.pods.get(key, {}).values())
    owners = (job or {}).get("metadata", {}).get("ownerReferences") or []
    if job is None or not analysis.is_analysis_job(job):
        return None, []
    if not any(ref.get("uid") == visit["metadata"].get("uid") for ref in owners):
        return None, []
    return job, pods


def fold(
    api: kube.Api,
    cache: vcache.Cache,
    visit: dict[str, Any],
    status: dict[str, Any],
    context: tuple[dict[str, Any] | None, Sequence[int], str],
    now: dt.datetime,
    launch: bool = True,
) -> dict[str, Any]:
    """``status`` with the analysis folded in; the analysis Job made first if it is due.

    ``context`` is (the PromptConfig, the visit's detectors, the visit's traceparent).
    ``launch`` False (the prompt Job is gone: an old Visit, seen at start or after its TTL)
    makes none: enabling analysis must not start one for every Visit of the past.
    """
    config, detectors, traceparent = context
    job, pods = view(cache, visit)
    if launch and job is None and config is not None and analysis.due(visit, status, config):
        body = analysis.build_analysis_job(visit, config, detectors, traceparent)
        job = _create(api, cache, body)
        pods = []
    limits = dict(analysis.settings_of(config).get("limits") or {})
    return qa.with_analysis(status, job, pods, limits, now)


def _create(api: kube.Api, cache: vcache.Cache, body: dict[str, Any]) -> dict[str, Any] | None:
    meta = body["metadata"]
    created = api.create("jobs", body)
    if created is None:  # made before (a restart between creation and the status patch)
        created = api.get("jobs", meta["namespace"], meta["name"])
        owner = body["metadata"]["ownerReferences"][0]["uid"]
        refs = ((created or {}).get("metadata") or {}).get("ownerReferences") or []
        if created is None or not any(r.get("uid") == owner for r in refs):
            log.warning("Job %s/%s belongs to another Visit", meta["namespace"], meta["name"])
            return None
    cache.put_job(created)
    log.info("analysis Job %s/%s created", meta["namespace"], meta["name"])
    return created


def announce(
    api: kube.Api, visit: dict[str, Any], old: dict[str, Any], new: dict[str, Any]
) -> None:
    """An Event when the analysis starts and when it ends (after the status patch)."""
    before = (old.get("analysis") or {}).get("phase")
    entry = new.get("analysis") or {}
    after = entry.get("phase")
    if after == before or after is None:
        return
    if before is None:
        api.event(visit, "Visit", "AnalysisCreated", f"Job {entry.get('jobName')}", False)
    if after == "Failed":
        api.event(visit, "Visit", "AnalysisFailed", str(entry.get("reason", "")), True)
    elif after == "Succeeded":
        cond: dict[str, Any] = next(
            (c for c in new.get("conditions") or [] if c["type"] == qa.CONDITION), {}
        )
        within = cond.get("status") != "False"
        reason = "QAWithinLimits" if within else "QAOutsideLimits"
        api.event(visit, "Visit", reason, str(cond.get("message", "")), not within)


def _finished(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    ends = ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")
    return any(c["type"] in ends and c.get("status") == "True" for c in conditions)


def _demand(job: dict[str, Any]) -> int:
    spec = job.get("spec") or {}
    completions = int(spec.get("completions") or 1)
    return min(completions, int(spec.get("parallelism") or completions))


def admit(
    api: kube.Api,
    cache: vcache.Cache,
    pool: tuple[str, str],
    config: dict[str, Any],
    limit: int,
    entries: Sequence[queue.Entry],
    prompt_jobs: Sequence[dict[str, Any]],
) -> None:
    """Release or suspend the pool's analysis Jobs (`analysis.plan_gate`), after the prompt
    Jobs' own admission: ``entries`` are those Jobs' queue entries, ``prompt_jobs`` every
    prompt Job of the pool still held (finished ones too: the reserve is the largest visit
    seen, so the next one finds its room)."""
    namespace, instrument = pool
    block = analysis.settings_of(config)
    busy = sum(e.running for e in entries) + sum(e.demand for e in entries if e.suspended)
    reserve = int(block.get("reserveDetectors", max(map(_demand, prompt_jobs), default=0)))
    running: list[tuple[str, tuple[str, str]]] = []
    waiting: list[tuple[str, tuple[str, str]]] = []
    with cache.lock:
        for key, job in cache.jobs.items():
            owner = (job["metadata"].get("ownerReferences") or [{}])[0].get("name")
            visit = cache.visits.get((namespace, str(owner)))
            if key[0] != namespace or not analysis.is_analysis_job(job) or visit is None:
                continue
            if visit["spec"]["instrument"] != instrument or _finished(job):
                continue
            if job["metadata"].get("deletionTimestamp"):
                continue
            entry = (str(job["metadata"].get("creationTimestamp", "")), key)
            (waiting if (job.get("spec") or {}).get("suspend") else running).append(entry)
    gate = analysis.plan_gate(limit, busy, reserve, int(block.get("slots", 1)), running, waiting)
    for keys, suspend in ((gate.suspend, True), (gate.release, False)):
        for key in keys:
            updated = api.patch("jobs", key[0], key[1], {"spec": {"suspend": suspend}})
            if updated is not None:
                cache.put_job(updated)
