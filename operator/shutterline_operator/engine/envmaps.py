"""The env ConfigMaps tended as a set (`core.envmap.plan`): one that a Job refers to, or that
a PromptConfig's next Job would, is made again if it is gone (deleted by hand: the pods of
its Jobs cannot start without it); one that neither needs (an older PromptConfig generation
whose last Job is gone) is deleted. One only made again while its PromptConfig exists: the
garbage collector deletes those of a deleted PromptConfig."""

from __future__ import annotations

import logging
from typing import Any

from shutterline_operator.core import envmap
from shutterline_operator.engine import cache as vcache
from shutterline_operator.engine import reconcile

__all__ = ["tend"]

log = logging.getLogger("shutterline.operator")


def tend(rec: reconcile.Reconciler, delete: bool) -> None:
    """Make the env ConfigMaps that are needed and missing; with ``delete``, delete those
    no longer needed (not while Jobs are being made: one may be about to refer to it)."""
    cache = rec.cache
    with cache.lock:
        cache.maps_dirty = False
        held, gone = set(cache.maps), dict(cache.gone_maps)
        used = {
            (namespace, name)
            for (namespace, _), job in cache.jobs.items()
            if not job["metadata"].get("deletionTimestamp")
            for name in envmap.referenced(job)
        }
        owners = {str(c["metadata"].get("uid")) for c in cache.configs.values()}
    current = {_key(body): body for _, body in list(rec.env_maps.values())}
    missing, stale = envmap.plan(held, used, current.keys())
    for key in missing:
        body = current.get(key) or gone.get(key)
        if body is None or not _owned_by(body, owners):
            continue
        log.info("env ConfigMap %s/%s is gone: made again", *key)
        rec.api.create("configmaps", body)
        cache.put_map(body)
    for key in stale if delete else ():
        log.info("env ConfigMap %s/%s: no Job refers to it any more, deleted", *key)
        rec.api.delete("configmaps", *key)


def _key(body: dict[str, Any]) -> vcache.Key:
    return (str(body["metadata"]["namespace"]), str(body["metadata"]["name"]))


def _owned_by(body: dict[str, Any], uids: set[str]) -> bool:
    owners = body["metadata"].get("ownerReferences") or []
    return any(str(ref.get("uid")) in uids for ref in owners)
