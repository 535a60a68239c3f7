"""Trim API objects to what the operator reads, so a cache of thousands of pods stays small."""

from __future__ import annotations

from typing import Any

from shutterline_operator.core import envmap

__all__ = ["merge_patch", "slim_job", "slim_pod", "slim_visit"]

_META = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "finalizers",
    "resourceVersion",
    "labels",
    "annotations",
    "ownerReferences",
    "generation",
)


def _meta(obj: dict[str, Any], keys: tuple[str, ...] = _META) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {k: meta[k] for k in keys if meta.get(k) is not None}


def _container(status: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "ready", "state", "restartCount")
    return {k: status[k] for k in keep if k in status}


def slim_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """Name, index annotation, phase and the container states of a worker pod."""
    meta = _meta(
        pod,
        (
            "name",
            "namespace",
            "creationTimestamp",
            "deletionTimestamp",
            "resourceVersion",
            "labels",
            "annotations",
        ),
    )
    status = pod.get("status") or {}
    return {
        "metadata": meta,
        "status": {
            "phase": status.get("phase"),
            "containerStatuses": [_container(s) for s in status.get("containerStatuses") or []],
            "initContainerStatuses": [
                _container(s) for s in status.get("initContainerStatuses") or []
            ],
        },
    }


def slim_job(job: dict[str, Any]) -> dict[str, Any]:
    """Metadata, the spec fields the queue reads, the ConfigMaps its pods read (as one
    container's ``envFrom``: `envmap.referenced` reads them back) and the whole status."""
    spec = job.get("spec") or {}
    keep = ("suspend", "completions", "parallelism", "activeDeadlineSeconds")
    slim = {k: spec[k] for k in keep if k in spec}
    if maps := envmap.referenced(job):
        sources = [{"configMapRef": {"name": name}} for name in sorted(maps)]
        slim["template"] = {"spec": {"containers": [{"envFrom": sources}]}}
    return {"metadata": _meta(job), "spec": slim, "status": dict(job.get("status") or {})}


def slim_visit(visit: dict[str, Any]) -> dict[str, Any]:
    """A Visit without its managed fields."""
    return {
        "apiVersion": visit.get("apiVersion"),
        "kind": visit.get("kind"),
        "metadata": _meta(visit),
        "spec": dict(visit.get("spec") or {}),
        "status": dict(visit.get("status") or {}),
    }


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``; {} if they are equal."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif value != before or key not in old:
            patch[key] = value
    return patch
