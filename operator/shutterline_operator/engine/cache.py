"""What the operator knows of the cluster: Visits, their Jobs and pods, PromptConfigs.

Filled once from the API at start-up (`Cache.seed`), then kept current by watch events; an
event older than what is held (by ``resourceVersion``) is ignored. Pods are found by their
Job's name, Jobs by their owner Visit: the index from owner to Visit that lets one status
loop serve every Visit without a timer per Visit. Every event marks its Visit dirty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import Any

from shutterline_operator.core import envmap, names, slim

__all__ = ["Cache", "Key"]

Key = tuple[str, str]
_JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _key(obj: dict[str, Any]) -> Key:
    return (str(obj["metadata"]["namespace"]), str(obj["metadata"]["name"]))


def _version(obj: dict[str, Any]) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def _newer(held: dict[str, Any] | None, incoming: dict[str, Any]) -> bool:
    return held is None or _version(incoming) >= _version(held)


def _claim(visit: dict[str, Any]) -> tuple[str, str, str]:
    spec = visit.get("spec") or {}
    namespace = str(visit["metadata"]["namespace"])
    return (namespace, str(spec.get("instrument")), str(spec.get("visitId")))


def _owner_ref(job: dict[str, Any]) -> dict[str, Any]:
    for ref in job["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Visit" and ref.get("apiVersion", "").startswith(names.GROUP):
            return dict(ref)
    return {}


def _map_meta(config_map: dict[str, Any]) -> dict[str, Any]:
    """What a ConfigMap made again keeps of ``config_map``'s metadata."""
    meta = config_map["metadata"]
    keep = ("name", "namespace", "labels", "ownerReferences")
    return {k: meta[k] for k in keep if meta.get(k) is not None}


def _owner_visit(job: dict[str, Any]) -> str | None:
    name = _owner_ref(job).get("name")
    return str(name) if name else None


class Cache:
    """Thread-safe store of the objects the operator reads, and of which Visits are dirty."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.visits: dict[Key, dict[str, Any]] = {}
        self.jobs: dict[Key, dict[str, Any]] = {}
        self.pods: dict[Key, dict[str, dict[str, Any]]] = {}
        self.configs: dict[Key, dict[str, Any]] = {}
        #: The env ConfigMaps (`core.envmap`) that exist, and the last seen state of those
        #: deleted (to make one again that a Job still needs).
        self.maps: dict[Key, dict[str, Any]] = {}
        self.gone_maps: dict[Key, dict[str, Any]] = {}
        #: Whether an env ConfigMap changed since the maps were last tended.
        self.maps_dirty = True
        self.dirty: dict[Key, float] = {}
        #: uids of the Visits whose Job this process has seen (kept after the Job is gone).
        self.jobbed: set[str] = set()
        self.wake = threading.Event()
        self.seeded = False
        self.queue_dirty = True
        #: (namespace, instrument, visit id) -> names of the Visits that claim it: a new
        #: Visit's duplicate check reads these, not every Visit of a night.
        self.by_visit_id: dict[tuple[str, str, str], set[str]] = {}

    # --- updates from events --------------------------------------------------------------
    def _mark(self, key: Key, queue: bool = False) -> None:
        # A new event ends a deferral (`mark_at`): it may be urgent; the fold will tell.
        now = time.monotonic()
        self.dirty[key] = min(self.dirty.get(key, now), now)
        self.queue_dirty |= queue
        self.wake.set()

    def mark(self, key: Key) -> None:
        """Ask the status loop to look at Visit ``key`` again."""
        with self.lock:
            self._mark(key)

    def mark_at(self, key: Key, when: float) -> None:
        """Ask the status loop to look at Visit ``key`` as if it had changed at ``when``
        (monotonic; later than now defers it), unless it is already due earlier."""
        with self.lock:
            self.dirty[key] = min(self.dirty.get(key, when), when)
            self.wake.set()

    def put_visit(self, visit: dict[str, Any], deleted: bool = False) -> None:
        """A Visit was added, changed or (``deleted``) removed."""
        key = _key(visit)
        with self.lock:
            held = self.visits.get(key)
            if deleted:
                self.visits.pop(key, None)
                self.dirty.pop(key, None)
                self.queue_dirty = True
                self._index(held, drop=True)
                return
            if _newer(held, visit):
                self._index(held, drop=True)
                self.visits[key] = slim.slim_visit(visit)
                self._index(self.visits[key])
                self._mark(key, queue=True)

    def _index(self, visit: dict[str, Any] | None, drop: bool = False) -> None:
        if visit is None:
            return
        claim = _claim(visit)
        names_ = self.by_visit_id.setdefault(claim, set())
        if drop:
            names_.discard(str(visit["metadata"]["name"]))
            if not names_:
                del self.by_visit_id[claim]
        else:
            names_.add(str(visit["metadata"]["name"]))

    def put_job(self, job: dict[str, Any], deleted: bool = False) -> None:
        """A Job of a Visit was added, changed or removed."""
        key, owner = _key(job), _owner_visit(job)
        with self.lock:
            if deleted:
                self.jobs.pop(key, None)
            elif _newer(self.jobs.get(key), job):
                self.jobs[key] = slim.slim_job(job)
            if not deleted and _owner_ref(job).get("uid"):
                self.jobbed.add(str(_owner_ref(job)["uid"]))
            if owner:
                self._mark((key[0], owner), queue=True)

    def put_pod(self, pod: dict[str, Any], deleted: bool = False) -> None:
        """A worker pod was added, changed or removed."""
        namespace, name = _key(pod)
        job = ((pod["metadata"].get("labels") or {}).get(_JOB_NAME_LABEL)) or ""
        with self.lock:
            pods = self.pods.setdefault((namespace, job), {})
            if deleted:
                pods.pop(name, None)
                if not pods:
                    del self.pods[(namespace, job)]
            elif _newer(pods.get(name), pod):
                pods[name] = slim.slim_pod(pod)
            held = self.jobs.get((namespace, job))
            owner = _owner_visit(held) if held else None
            if owner:
                self._mark((namespace, owner))

    def put_config(self, config: dict[str, Any], deleted: bool = False) -> None:
        """A PromptConfig was added, changed or removed."""
        key = _key(config)
        with self.lock:
            if deleted:
                self.configs.pop(key, None)
            elif _newer(self.configs.get(key), config):
                self.configs[key] = {
                    "metadata": dict(config["metadata"]),
                    "spec": dict(config.get("spec") or {}),
                }

    def put_map(self, config_map: dict[str, Any], deleted: bool = False) -> None:
        """An env ConfigMap was made, found or (``deleted``) removed; others are ignored."""
        if not envmap.is_env_map(config_map):
            return
        key = _key(config_map)
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _map_meta(config_map),
            "immutable": config_map.get("immutable", True),
            "data": dict(config_map.get("data") or {}),
        }
        with self.lock:
            if deleted:
                self.maps.pop(key, None)
                self.gone_maps[key] = body
            else:
                self.maps[key] = body
                self.gone_maps.pop(key, None)
            self.maps_dirty = True
            self.wake.set()

    def seed(self, kinds: dict[str, Iterable[dict[str, Any]]]) -> None:
        """Fill from full listings (``visits``, ``jobs``, ``pods``, ``promptconfigs``,
        ``configmaps``)."""
        put = {
            "configmaps": self.put_map,
            "visits": self.put_visit,
            "jobs": self.put_job,
            "pods": self.put_pod,
            "promptconfigs": self.put_config,
        }
        for kind in ("promptconfigs", "configmaps", "jobs", "pods", "visits"):
            for obj in kinds.get(kind, ()):
                put[kind](obj)
        self.seeded = True

    # --- reads ----------------------------------------------------------------------------
    def config_for(self, namespace: str, instrument: str) -> dict[str, Any] | None:
        """The PromptConfig of ``instrument`` in ``namespace`` (oldest if several)."""
        with self.lock:
            found = [
                c
                for (ns, _), c in self.configs.items()
                if ns == namespace and c["spec"].get("instrument") == instrument
            ]
        found.sort(key=lambda c: str(c["metadata"].get("creationTimestamp", "")))
        return found[0] if found else None

    def visit_view(
        self, key: Key
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[dict[str, Any]]]:
        """(Visit, its Job, the Job's pods) as held now (copies of the top-level dicts)."""
        with self.lock:
            visit = self.visits.get(key)
            job_key = (key[0], names.job_name(key[1]))
            job = self.jobs.get(job_key)
            pods = list(self.pods.get(job_key, {}).values())
        return visit, job, pods

    def had_job(self, visit: dict[str, Any]) -> bool:
        """Whether a Job of ``visit`` (this very Visit, by uid) was ever seen."""
        with self.lock:
            return str(visit["metadata"].get("uid")) in self.jobbed

    def same_visit_id(self, visit: dict[str, Any]) -> list[dict[str, Any]]:
        """The Visits of ``visit``'s namespace with its instrument and visit id (itself too,
        if held): all `validation.validate` needs of the siblings, found in the index."""
        namespace = str(visit["metadata"]["namespace"])
        with self.lock:
            held = self.by_visit_id.get(_claim(visit), ())
            return [self.visits[(namespace, name)] for name in sorted(held)]

    def earliest_dirty(self, busy: AbstractSet[Key] = frozenset()) -> float | None:
        """When the longest-waiting dirty Visit not in ``busy`` was marked (monotonic)."""
        with self.lock:
            return min((t for k, t in self.dirty.items() if k not in busy), default=None)

    def take_dirty(
        self, older_than: float, busy: AbstractSet[Key] = frozenset(), limit: int | None = None
    ) -> list[Key]:
        """Dirty Visits marked before ``older_than`` (monotonic), longest-waiting first and at
        most ``limit``, removed from the dirty set; those in ``busy`` (being patched) stay
        dirty for when they are done."""
        with self.lock:
            due = [k for k, t in self.dirty.items() if t <= older_than and k not in busy]
            if limit is not None and len(due) > limit:
                due = sorted(due, key=self.dirty.__getitem__)[: max(limit, 0)]
            for key in due:
                del self.dirty[key]
            if self.dirty.keys() <= busy:
                self.wake.clear()
            return due
