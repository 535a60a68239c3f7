"""The reconcile steps: create a Visit's Job (or reject it), release queued Jobs, and fold
Job and pod state into the Visit's status. Every decision is a core function; every effect
an adapter call. Each step may run again at any time with the same result (restart-safe)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from typing import Any

from shutterline.camera import layout
from shutterline_operator.adapters import kube, metrics, tracing
from shutterline_operator.core import (
    builders,
    compact,
    names,
    queue,
    slim,
    timing,
    tracecontext,
    validation,
)
from shutterline_operator.core import status as vstatus
from shutterline_operator.engine import analysis
from shutterline_operator.engine import cache as vcache

__all__ = ["CAMERAS", "Reconciler", "Retry"]

log = logging.getLogger("shutterline.operator")
#: Instrument -> detector numbers of its camera (``shutterline.camera``).
CAMERAS: dict[str, frozenset[int]] = {
    layout.CAMERA.name: frozenset(d.ccdnum for d in layout.CAMERA.detectors)
}
_WARNING = ("Failed", "PartiallySucceeded", "TimedOut", "Rejected")
#: Details that are not worth a patch yet are still sent after this many detail intervals.
_STALE = 10


class Retry(Exception):
    """Try this step again later (a transient API error, a Job still being deleted)."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key(obj: dict[str, Any]) -> vcache.Key:
    return (str(obj["metadata"]["namespace"]), str(obj["metadata"]["name"]))


class Reconciler:
    """The operator's state and steps, shared by the kopf handlers and the status loop."""

    def __init__(
        self,
        api: kube.Api,
        spans: tracing.RootSpans,
        detail_s: float = 3.0,
        queue_policy: str = "coarse",
        shape: str = "compact",
        progress_step: int = 25,
        lean: bool = True,
    ) -> None:
        self.api, self.spans, self.detail_s = api, spans, detail_s
        #: Jobs read the shared env from a ConfigMap and are answered with their metadata
        #: only (`kube.Api.create`); False: the whole Job inline and answered (the operator
        #: before, for comparisons).
        self.lean = lean
        #: The env ConfigMap this process made or found, per PromptConfig (namespace, name)
        #: and its resourceVersion: built and created once per version, not per Visit.
        self.env_maps: dict[vcache.Key, tuple[str, dict[str, Any]]] = {}
        queue.step(1, queue_policy)  # a bad policy name fails here, at start-up
        compact.encode({}, [], shape)  # and so does a bad status shape
        self.queue_policy, self.shape, self.progress_step = queue_policy, shape, progress_step
        self.cache = vcache.Cache()
        #: The queue slot each waiting Visit reports (`core.queue.settle`).
        self.slots: dict[vcache.Key, vstatus.QueueSlot] = {}
        #: When (monotonic) each unfinished Visit's status was last patched.
        self.patched: dict[vcache.Key, float] = {}

    def seed(self, namespaces: list[str] | None) -> None:
        """Fill the cache from the API (before any handler runs)."""
        selector = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
        scopes: list[str | None] = list(namespaces) if namespaces else [None]
        listings: dict[str, Iterable[dict[str, Any]]] = {}
        for kind in ("promptconfigs", "configmaps", "jobs", "pods", "visits"):
            wanted = selector if kind in ("configmaps", "jobs", "pods") else None
            listings[kind] = [obj for ns in scopes for obj in self.api.list(kind, ns, wanted)]
        self.cache.seed(listings)

    # --- creation -------------------------------------------------------------------------
    def ensure(self, visit: dict[str, Any]) -> None:
        """Give ``visit`` its Job, or reject it; nothing if it already has one or is done."""
        started = time.perf_counter()
        self.cache.put_visit(visit)
        try:
            self._ensure(visit)
        except kube.ApiError as error:
            if error.transient:
                raise Retry(str(error)) from error
            raise
        finally:
            metrics.RECONCILE_SECONDS.labels("ensure").observe(metrics.since(started))

    def _ensure(self, visit: dict[str, Any]) -> None:
        namespace, name = _key(visit)
        if (visit.get("status") or {}).get("phase") in vstatus.TERMINAL:
            return
        existing = self.cache.jobs.get((namespace, names.job_name(name)))
        if existing is not None:
            self._adopt(visit, existing)
            return
        spec = visit["spec"]
        config = self._config(namespace, spec["instrument"])
        camera = CAMERAS.get(spec["instrument"])
        now = _utcnow()
        rejection = validation.validate(visit, config, camera, self.cache.same_visit_id(visit), now)
        if rejection is not None or config is None or camera is None:
            self.reject(visit, rejection or validation.Rejection("Invalid", "invalid"))
            return
        env_map = self._env_map(config) if self.lean else None
        job = self._build(visit, config, camera, now, env_map)
        # Not fieldValidation=Ignore: measured no cheaper (bench_job_post, docs/operator.md).
        self.created(visit, job, self.api.create("jobs", job, metadata_only=self.lean))

    def _build(
        self,
        visit: dict[str, Any],
        config: dict[str, Any],
        camera: frozenset[int],
        now: dt.datetime,
        env_map: dict[str, Any] | None,
    ) -> dict[str, Any]:
        detectors = validation.detectors_of(visit["spec"], camera)
        traceparent = tracecontext.traceparent_of(visit)
        return builders.build_job(visit, config, detectors, traceparent, now, env_map)

    def prepare(self, visit: dict[str, Any]) -> dict[str, Any] | None:
        """The Job to create for ``visit`` when that needs no other API call first: its
        PromptConfig is cached, its env ConfigMap exists, it is valid and no Job of its name
        is held. None otherwise: `ensure` then takes every case (the rare ones)."""
        namespace, name = _key(visit)
        if (visit.get("status") or {}).get("phase") in vstatus.TERMINAL:
            return None
        if (namespace, names.job_name(name)) in self.cache.jobs:
            return None
        config = self.cache.config_for(namespace, visit["spec"]["instrument"])
        camera = CAMERAS.get(visit["spec"]["instrument"])
        if config is None or camera is None:
            return None
        env_map = self._known_env_map(config) if self.lean else None
        if self.lean and env_map is None:
            return None
        now = _utcnow()
        if validation.validate(visit, config, camera, self.cache.same_visit_id(visit), now):
            return None
        return self._build(visit, config, camera, now, env_map)

    def created(
        self, visit: dict[str, Any], job: dict[str, Any], answer: dict[str, Any] | None
    ) -> None:
        """``job`` was POSTed for ``visit`` and ``answer`` came back (None: 409, a Job of
        that name exists: adopt it if it is this Visit's)."""
        if answer is None:  # made by an earlier run of this step (or an older Visit's)
            found = self.api.get("jobs", *_key(job))
            if found is not None:
                self._adopt(visit, found)
            return
        if self.lean:  # metadata only: the rest is what was sent
            answer = {**job, "metadata": answer["metadata"]}
        self.cache.put_job(answer)
        seen = timing.parse_time(visit["metadata"]["creationTimestamp"])
        metrics.VISIT_TO_JOB_SECONDS.observe(max((_utcnow() - seen).total_seconds(), 0.0))

    def _known_env_map(self, config: dict[str, Any]) -> dict[str, Any] | None:
        """The env ConfigMap of ``config``'s current version if this process has it and it
        exists; None if `_env_map` has work to do."""
        meta = config["metadata"]
        known = self.env_maps.get((meta["namespace"], meta["name"]))
        version = meta.get("resourceVersion", "")
        if known is None or not version or known[0] != version:
            return None
        return known[1] if _key(known[1]) in self.cache.maps else None

    def _env_map(self, config: dict[str, Any]) -> dict[str, Any]:
        """The env ConfigMap of ``config``, created on its generation's first Job and again
        if it is gone (deleted by hand); a 409 is one that exists: its name is its content."""
        meta = config["metadata"]
        key, version = (meta["namespace"], meta["name"]), meta.get("resourceVersion", "")
        known = self.env_maps.get(key)
        if known is not None and version and known[0] == version:
            body = known[1]
        else:
            body = builders.env_config_map(config)
        if _key(body) not in self.cache.maps:
            self.api.create("configmaps", body)
            self.cache.put_map(body)
        self.env_maps[key] = (version, body)
        return body

    def drop_finalizer(self, visit: dict[str, Any]) -> None:
        """Let a Visit being deleted go: older operator versions (kopf change handlers) put a
        finalizer on every Visit, which nothing would remove now."""
        namespace, name = _key(visit)
        kept = [f for f in visit["metadata"].get("finalizers") or [] if f != names.FINALIZER]
        self.api.patch("visits", namespace, name, {"metadata": {"finalizers": kept or None}})

    def _adopt(self, visit: dict[str, Any], job: dict[str, Any]) -> None:
        """A Job of this name exists: ours (restart), or a dead Visit's still being deleted."""
        owners = job["metadata"].get("ownerReferences") or []
        if not any(ref.get("uid") == visit["metadata"]["uid"] for ref in owners):
            raise Retry(f"Job {job['metadata']['name']} belongs to an earlier Visit of this name")
        self.cache.put_job(job)

    def _config(self, namespace: str, instrument: str) -> dict[str, Any] | None:
        found = self.cache.config_for(namespace, instrument)
        if found is None:  # maybe not in the cache yet: ask the API server
            for config in self.api.list("promptconfigs", namespace):
                self.cache.put_config(config)
            found = self.cache.config_for(namespace, instrument)
        return found

    def reject(self, visit: dict[str, Any], rejection: validation.Rejection) -> None:
        """Mark ``visit`` Rejected (condition, label, Warning Event); no Job is made."""
        namespace, name = _key(visit)
        now = _utcnow()
        conditions = vstatus.set_condition(
            (visit.get("status") or {}).get("conditions") or [],
            "Validated",
            False,
            rejection.reason,
            rejection.message,
            now,
        )
        status = {
            "phase": "Rejected",
            "reason": rejection.reason,
            "message": rejection.message,
            "finishedAt": timing.format_time(now),
            "conditions": conditions,
        }
        updated = self.api.patch("visits", namespace, name, {"status": status}, status=True)
        self.api.patch(
            "visits", namespace, name, {"metadata": {"labels": {names.LABEL_PHASE: "Rejected"}}}
        )
        self.api.event(visit, "Visit", "Rejected", f"{rejection.reason}: {rejection.message}", True)
        if updated is not None:
            self.cache.put_visit(updated)
        log.info("visit %s/%s rejected: %s", namespace, name, rejection.message)

    # --- status ---------------------------------------------------------------------------
    def flush(self, key: vcache.Key) -> None:
        """Fold the Visit's Job and pods into its status; patch only what changed."""
        started = time.perf_counter()
        visit, job, pods = self.cache.visit_view(key)
        if visit is None or (visit.get("status") or {}).get("phase") == "Rejected":
            return
        if job is None and not (visit.get("status") or {}).get("phase"):
            return  # not handled yet: the create handler will make the Job or reject
        camera = CAMERAS.get(visit["spec"]["instrument"], frozenset())
        detectors = validation.detectors_of(visit["spec"], camera)
        old = visit.get("status") or {}
        now = _utcnow()
        new = vstatus.fold(visit, job, pods, detectors, now, self.slots.get(key), self.shape)
        config = self.cache.config_for(key[0], str(visit["spec"]["instrument"]))
        context = (config, detectors, tracecontext.traceparent_of(visit))
        new = analysis.fold(self.api, self.cache, visit, new, context, now, job is not None)
        patch = slim.merge_patch(old, new)
        if patch and self._defer(key, old, new, patch):
            return
        if patch:
            updated = self.api.patch("visits", key[0], key[1], {"status": patch}, status=True)
            self.patched[key] = time.monotonic()
            if updated is not None:
                self.cache.put_visit(updated)
        if new.get("phase") in vstatus.TERMINAL:
            self.patched.pop(key, None)
        if new.get("phase") != old.get("phase"):
            self.publish_phase(visit, new, job, first=not old.get("phase"))
        analysis.announce(self.api, visit, old, new)
        metrics.RECONCILE_SECONDS.labels("status").observe(metrics.since(started))

    def _defer(
        self, key: vcache.Key, old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]
    ) -> bool:
        """Hold a patch of details only until ``detail_s`` after the Visit's last patch if it
        is `vstatus.worth` sending (a progress step), else until ``_STALE`` times that."""
        last = self.patched.get(key)
        if vstatus.urgent(patch) or last is None:
            return False
        worth = vstatus.worth(old, new, patch, self.progress_step)
        due = last + self.detail_s * (1 if worth else _STALE)
        if time.monotonic() >= due:
            return False
        self.cache.mark_at(key, due)
        return True

    def publish_phase(
        self,
        visit: dict[str, Any],
        status: dict[str, Any],
        job: dict[str, Any] | None = None,
        first: bool = False,
    ) -> None:
        """A new phase: an Event, the phase label, and at the end the root span.

        The ``first`` phase's Event also names the Job (no Event of its own: one POST less
        per Visit while a burst of them waits for Jobs)."""
        namespace, name = _key(visit)
        phase = str(status["phase"])
        message = str(status.get("message", ""))
        if first and job is not None:
            count = (job.get("spec") or {}).get("completions")
            message = f"Job {job['metadata']['name']} ({count} detectors): {message}"
        self.api.event(visit, "Visit", phase, message, phase in _WARNING)
        meta: dict[str, Any] = {"labels": {names.LABEL_PHASE: phase}}
        annotations = visit["metadata"].get("annotations") or {}
        if not annotations.get(names.ANNOTATION_TRACEPARENT):  # for people: rides on the label
            meta["annotations"] = {names.ANNOTATION_TRACEPARENT: tracecontext.traceparent_of(visit)}
        if phase in vstatus.TERMINAL and not annotations.get(names.ANNOTATION_TRACE_RECORDED):
            config = self.cache.config_for(namespace, str(visit["spec"]["instrument"]))
            endpoint = ((config or {}).get("spec", {}).get("telemetry") or {}).get("otlpEndpoint")
            if self.spans.record(visit, status, endpoint):
                meta.setdefault("annotations", {})[names.ANNOTATION_TRACE_RECORDED] = "true"
        updated = self.api.patch("visits", namespace, name, {"metadata": meta})
        if updated is not None:
            self.cache.put_visit(updated)
        if job is not None and phase in vstatus.TERMINAL:
            labels = {"metadata": {"labels": {names.LABEL_PHASE: phase}}}
            self.api.patch("jobs", namespace, job["metadata"]["name"], labels)
