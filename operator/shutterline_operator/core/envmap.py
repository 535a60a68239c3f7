"""The worker pods' shared environment as one ConfigMap per PromptConfig generation.

Every container of a worker pod gets the same environment (docs/architecture.md), and most of
it comes from the PromptConfig alone. Sent inline, those variables are repeated in each of the
pod's four containers of every Job; the API server decodes, validates, defaults, stores and
sends them to every watcher each time. `config_map` holds them once, under a name derived from
their content (so a changed PromptConfig gives a new ConfigMap, never a changed one, and the
pods of older Jobs keep theirs), immutable, owned by the PromptConfig (garbage-collected with
it). `slim_env` drops from a container's inline ``env`` what the ConfigMap gives it with the
same value; what a Visit overrides stays inline and, coming after ``envFrom``, wins.

The ConfigMaps are tended as a set (`plan`): one that a Job refers to, or that is the current
one of a PromptConfig, and is missing (deleted by hand) is made again; one that is neither
(an older generation whose last Job is gone) is deleted.

The per-Visit values that are large (the Visit spec, the detector list) go once into the pod
template's annotations and reach each container through the downward API (`visit_refs`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import Any

from shutterline_operator.core import names

__all__ = [
    "ANNOTATIONS",
    "config_map",
    "is_env_map",
    "plan",
    "referenced",
    "slim_env",
    "visit_refs",
]

#: Env variable -> the pod annotation carrying its value.
ANNOTATIONS = {
    "SHUTTERLINE_VISIT_SPEC": f"{names.GROUP}/visit-spec",
    "SHUTTERLINE_DETECTORS": f"{names.GROUP}/detectors",
}
# envFrom skips keys that are no C identifier, and a ConfigMap value is never $(VAR)-expanded
# as an inline value is: such variables stay inline.
_MOVABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def config_map(config: dict[str, Any], env: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The ConfigMap of the literal variables of ``env`` that come from ``config`` alone.

    ``env`` is a worker env (`builders.worker_env`) of a Visit without overrides.
    """
    meta = config["metadata"]
    data = {
        e["name"]: e["value"]
        for e in env
        if "value" in e
        and _MOVABLE.fullmatch(e["name"])
        and "$" not in e["value"]
        and e["name"] not in _PER_VISIT
    }
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{names.label_value(meta['name'])[:40]}-env-{digest}",
            "namespace": meta["namespace"],
            "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY},
            "ownerReferences": [
                {
                    "apiVersion": f"{names.GROUP}/{names.VERSION}",
                    "kind": "PromptConfig",
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "immutable": True,
        "data": data,
    }


# Per Visit or per Job: never in the shared ConfigMap.
_PER_VISIT = {"JOB_NAME", "TRACEPARENT", "OTEL_RESOURCE_ATTRIBUTES", *ANNOTATIONS}


def slim_env(env: list[dict[str, Any]], shared: dict[str, str]) -> list[dict[str, Any]]:
    """``env`` without the variables ``shared`` (a ConfigMap's data) gives the same value."""
    return [e for e in env if "value" not in e or shared.get(e["name"]) != e["value"]]


def visit_refs(env: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``env`` with the `ANNOTATIONS` variables read from the pod's annotations, and those
    annotations."""
    annotations = {ANNOTATIONS[e["name"]]: e["value"] for e in env if e["name"] in ANNOTATIONS}
    refs = [_annotation_ref(e["name"]) if e["name"] in ANNOTATIONS else e for e in env]
    return refs, annotations


def _annotation_ref(name: str) -> dict[str, Any]:
    path = f"metadata.annotations['{ANNOTATIONS[name]}']"
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def is_env_map(config_map: dict[str, Any]) -> bool:
    """Whether ``config_map`` is one of `config_map`'s (owned by a PromptConfig)."""
    owners = config_map["metadata"].get("ownerReferences") or []
    return any(ref.get("kind") == "PromptConfig" for ref in owners)


def referenced(job: dict[str, Any]) -> set[str]:
    """Names of the ConfigMaps the containers of ``job``'s pods read through ``envFrom``."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    return {
        source["configMapRef"]["name"]
        for container in containers
        for source in container.get("envFrom") or []
        if "configMapRef" in source
    }


Key = tuple[str, str]


def plan(
    held: AbstractSet[Key], used: AbstractSet[Key], current: AbstractSet[Key]
) -> tuple[list[Key], list[Key]]:
    """(ConfigMaps to make again, ConfigMaps to delete), as (namespace, name), sorted.

    ``held``: the env ConfigMaps that exist; ``used``: those some Job refers to; ``current``:
    those the next Job of a PromptConfig would refer to.
    """
    wanted = used | current
    return sorted(wanted - held), sorted(held - wanted)
