"""The next-visit feed: Visits created from an announced schedule ahead of their times.

The observatory announces each visit tens of seconds before its shutter opens; this feed
plays that part for a simulated night: for each visit of ``schedule.yaml`` it creates the
``Visit`` ``lead_time`` seconds before its observation start (on the replay clock shared
with ``shutterline schedule play``), so its pods pre-stage before the raws land.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from shutterline.pipeline import task
from shutterline.simulate import play

__all__ = ["GROUP", "PLURAL", "VERSION", "create_visit", "feed", "visit_manifest"]

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "shutterline.io", "v1alpha1", "visits"


def visit_manifest(spec: task.VisitSpec, namespace: str) -> dict[str, Any]:
    """The ``Visit`` object announcing ``spec`` (named ``visit-<visitId>``)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Visit",
        "metadata": {"name": f"visit-{spec.visit_id}", "namespace": namespace},
        "spec": spec.to_dict(),
    }


def create_visit(api: Any, manifest: dict[str, Any]) -> bool:
    """Create the Visit; ``False`` if one of that name exists already (a re-run feed)."""
    from kubernetes.client.exceptions import ApiException

    meta = manifest["metadata"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, manifest)
    except ApiException as exc:
        if exc.status == 409:
            log.info("%s/%s exists already", meta["namespace"], meta["name"])
            return False
        raise
    return True


def feed(
    api: Any,
    visits: Sequence[dict[str, Any]],
    instrument: str,
    raw_uri: str,
    clock: play.ReplayClock,
    lead_time_s: float,
    namespace: str,
    deadline_seconds: float = task.DEFAULT_DEADLINE_S,
    on_created: Callable[[dict[str, Any], float], None] | None = None,
) -> list[dict[str, Any]]:
    """Create each visit's Visit ``lead_time_s`` (wall seconds) before its observation start.

    Visits already due are created at once. Returns the manifests in creation order;
    ``on_created(manifest, unix_time)`` is called after each.
    """
    specs = [
        play.visit_spec(entry, instrument, raw_uri, clock, deadline_seconds) for entry in visits
    ]
    created = []
    for spec in sorted(specs, key=lambda s: s.observation_start):
        pause = spec.observation_start.timestamp() - lead_time_s - time.time()
        if pause > 0:
            time.sleep(pause)
        manifest = visit_manifest(spec, namespace)
        create_visit(api, manifest)
        now = time.time()
        log.info(
            "announced %s, %.1f s before its shutter opens",
            manifest["metadata"]["name"],
            spec.observation_start.timestamp() - now,
        )
        created.append(manifest)
        if on_created is not None:
            on_created(manifest, now)
    return created
