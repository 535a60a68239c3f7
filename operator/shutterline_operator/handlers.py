"""The kopf handlers: thin, typed, one engine call each.

Only watch events, no kopf change handlers: kopf then writes nothing on a Visit (no
finalizer, no progress or diff-base annotations), and the Job is the first write made for a
new Visit. Events of Visits, PromptConfigs and of the Jobs, pods and env ConfigMaps the
operator made (label selector) feed the engine's cache; a Visit event (the listing at start
included, which is the resume) offers the Visit to the engine's creator, and one status loop
folds the rest into Visit statuses.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import sys
from collections.abc import Iterable
from typing import Any

import kopf

from shutterline_operator.adapters import kube, kube_async, metrics, tracing
from shutterline_operator.core import names
from shutterline_operator.engine import creator, reconcile, statusloop

__all__ = ["WatchOnlyDiffBase", "namespaces"]

_OURS = {names.LABEL_MANAGED_BY: names.MANAGED_BY}
_state: dict[str, Any] = {}


def namespaces() -> list[str]:
    """Namespaces to watch (``SHUTTERLINE_NAMESPACES``, comma-separated); [] means all."""
    return [n for n in os.environ.get("SHUTTERLINE_NAMESPACES", "").split(",") if n]


def _rec() -> reconcile.Reconciler:
    rec: reconcile.Reconciler = _state["rec"]
    return rec


#: Threads creating Jobs. A burst's Visits arrive faster than 16 POSTs complete while the API
#: server is slow for a moment, and then wait for a thread: with 32 that wait's p99 halved
#: (docs/operator.md, "Since: 32 creators").
CREATORS = 32


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Fill the cache, resume unfinished Visits, start the loop and endpoints (the listing
    in a thread: kopf's loop is the one the creator's coroutines will run on)."""
    await asyncio.to_thread(_start, settings, asyncio.get_running_loop())


class WatchOnlyDiffBase(kopf.DiffBaseStorage):
    """No diff base: kopf builds one on every event (a deep copy of the whole body, Jobs and
    pods included), which only change and daemon handlers read, and there are none here. In
    a burst of Visits that copy was 40 % of kopf's thread, which takes the events in."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def _start(settings: kopf.OperatorSettings, loop: asyncio.AbstractEventLoop) -> None:
    settings.posting.level = logging.WARNING
    settings.persistence.diffbase_storage = WatchOnlyDiffBase()
    settings.peering.standalone = True
    # Resources are discovered once at start: no watch on CRDs or namespaces (least RBAC).
    settings.scanning.disabled = True
    workers = int(os.environ.get("SHUTTERLINE_OPERATOR_WORKERS", str(CREATORS)))
    if switch_s := os.environ.get("SHUTTERLINE_SWITCH_INTERVAL_S"):  # the GIL's (benchmarks)
        sys.setswitchinterval(float(switch_s))
    detail_s = float(os.environ.get("SHUTTERLINE_STATUS_DETAIL_S", "3"))
    policy = os.environ.get("SHUTTERLINE_QUEUE_POSITION", "coarse")
    api_client = kube.connect(workers + 16)
    api = kube.Api(api_client)
    shape = os.environ.get("SHUTTERLINE_STATUS_DETECTORS", "compact")
    step = int(os.environ.get("SHUTTERLINE_STATUS_PROGRESS_STEP", "25"))
    lean = os.environ.get("SHUTTERLINE_JOB_POST", "lean") == "lean"
    rec = reconcile.Reconciler(api, tracing.RootSpans(), detail_s, policy, shape, step, lean)
    rec.seed(namespaces() or None)
    maker = _creator(rec, workers, api_client, loop)
    maker.offer_all()
    interval = float(os.environ.get("SHUTTERLINE_STATUS_INTERVAL_S", "0.5"))
    status_workers = int(os.environ.get("SHUTTERLINE_STATUS_WORKERS", "4"))
    hold_s = float(os.environ.get("SHUTTERLINE_STATUS_HOLD_S", "2"))
    folder = statusloop.StatusLoop(rec, interval, status_workers, maker.creating, hold_s)
    folder.start()
    port = int(os.environ.get("SHUTTERLINE_OPERATOR_PORT", "8080"))
    server = metrics.serve(port, folder.alive, lambda: rec.cache.seeded and folder.alive())
    _state.update(rec=rec, loop=folder, server=server, creator=maker)


def _creator(
    rec: reconcile.Reconciler,
    workers: int,
    api_client: Any,
    loop: asyncio.AbstractEventLoop,
) -> creator.Creator:
    """The Job creator: its POSTs on kopf's loop (``SHUTTERLINE_CREATOR=async``) or on a
    pool of threads (``threads``, the operator before, for comparisons)."""
    times = os.environ.get("SHUTTERLINE_OPERATOR_TIMES")
    path = pathlib.Path(times) if times else None
    linger_s = float(os.environ.get("SHUTTERLINE_CREATE_LINGER_S", "0.5"))
    if os.environ.get("SHUTTERLINE_CREATOR", "threads") == "async":
        aapi = kube_async.AsyncApi(api_client.configuration, workers + 4)
        return creator.AsyncCreator(rec, aapi, loop, workers, times=path, linger_s=linger_s)
    return creator.Creator(rec, workers, times=path, linger_s=linger_s)


@kopf.on.cleanup()
def cleanup(**_: Any) -> None:
    """Stop the loop and the endpoints; send the root spans still batched."""
    if "loop" in _state:
        _state["creator"].stop()
        _state["loop"].stop()
        _state["server"].shutdown()
        _rec().spans.flush()


@kopf.on.event(names.GROUP, names.VERSION, "visits")
async def visit_event(event: kopf.RawEvent, **_: Any) -> None:
    """Keep the cached Visit current; give it its Job if it needs one."""
    visit: dict[str, Any] = dict(event["object"])
    _rec().cache.put_visit(visit, deleted=event["type"] == "DELETED")
    if event["type"] != "DELETED":
        _state["creator"].offer((visit["metadata"]["namespace"], visit["metadata"]["name"]))


@kopf.on.event(names.GROUP, names.VERSION, "promptconfigs")
async def config_event(event: kopf.RawEvent, **_: Any) -> None:
    """Keep the cached PromptConfig current."""
    _rec().cache.put_config(dict(event["object"]), deleted=event["type"] == "DELETED")


@kopf.on.event("batch", "v1", "jobs", labels=_OURS)
async def job_event(event: kopf.RawEvent, **_: Any) -> None:
    """A Job of a Visit changed: its Visit is dirty, and maybe the queue."""
    _rec().cache.put_job(dict(event["object"]), deleted=event["type"] == "DELETED")


@kopf.on.event("", "v1", "configmaps", labels=_OURS)
async def config_map_event(event: kopf.RawEvent, **_: Any) -> None:
    """An env ConfigMap changed (or was deleted by hand: it is made again if needed)."""
    _rec().cache.put_map(dict(event["object"]), deleted=event["type"] == "DELETED")


@kopf.on.event("", "v1", "pods", labels=_OURS)
async def pod_event(event: kopf.RawEvent, **_: Any) -> None:
    """A worker pod changed: its Visit is dirty."""
    _rec().cache.put_pod(dict(event["object"]), deleted=event["type"] == "DELETED")
