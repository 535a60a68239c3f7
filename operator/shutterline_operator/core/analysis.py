"""Visit + PromptConfig -> the visit's analysis Job, as a plain dict.

The analysis pod (docs/architecture.md, "The analysis pod") computes the QA values too
costly for the prompt pipeline's deadline, once the visit's prompt Job has finished. One pod
per visit (not Indexed), the prompt pod's image, environment and scratch volume, the
telemetry sidecar but no relay, and a low, preemptible PriorityClass (or, with Kueue, its own
LocalQueue and WorkloadPriorityClass), so it never holds capacity a prompt pod needs. Nothing
here talks to the API server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from shutterline_operator.core import builders, names

__all__ = [
    "AFTER",
    "CONTAINER",
    "DEFAULT_PRIORITY_CLASS",
    "LABEL_WORK",
    "WORK",
    "Gate",
    "build_analysis_job",
    "due",
    "is_analysis_job",
    "job_name",
    "plan_gate",
    "settings_of",
]

#: Label on the analysis Job and its pods; the built-in queue leaves such Jobs alone.
LABEL_WORK = "shutterline.io/work"
WORK = "analysis"
CONTAINER = "analysis"
DEFAULT_PRIORITY_CLASS = "shutterline-analysis"
_COMMAND = ["shutterline", "pod", "analyze"]
_EXIT_PERMANENT = 65
_SUFFIX = "-analysis"
# The pods of a non-Indexed Job are "<job>-<5 random>", and their job-name label is at most 63.
_NAME_MAX = 57
#: Visit phases after which the analysis runs: some detector delivered its products.
AFTER = ("Succeeded", "PartiallySucceeded")


def job_name(visit_name: str) -> str:
    """The one analysis Job of Visit ``visit_name``: ``<name>-analysis``, hashed if long."""
    name = f"{visit_name}{_SUFFIX}"
    if len(name) <= _NAME_MAX:
        return name
    digest = hashlib.sha256(visit_name.encode()).hexdigest()[:8]
    keep = _NAME_MAX - len(_SUFFIX) - len(digest) - 1
    return f"{visit_name[:keep].rstrip('-.')}-{digest}{_SUFFIX}"


def is_analysis_job(job: dict[str, Any]) -> bool:
    """Whether ``job`` is an analysis Job (by its `LABEL_WORK` label)."""
    return (job["metadata"].get("labels") or {}).get(LABEL_WORK) == WORK


def settings_of(config: dict[str, Any] | None) -> dict[str, Any]:
    """The PromptConfig's ``analysis`` block ({} when there is none)."""
    return dict(((config or {}).get("spec") or {}).get("analysis") or {})


def due(visit: dict[str, Any], status: dict[str, Any], config: dict[str, Any] | None) -> bool:
    """Whether ``visit`` (with its freshly folded ``status``) should get its analysis Job now:
    analysis enabled, the prompt Job finished with products, not launched before."""
    if not settings_of(config).get("enabled", False):
        return False
    if visit["metadata"].get("deletionTimestamp"):
        return False
    return status.get("phase") in AFTER and not status.get("analysis")


def build_analysis_job(
    visit: dict[str, Any],
    config: dict[str, Any],
    detectors: Sequence[int],
    traceparent: str,
) -> dict[str, Any]:
    """The analysis Job of ``visit``.

    Parameters
    ----------
    visit, config
        The Visit and its instrument's PromptConfig (``metadata``/``spec`` dicts).
    detectors
        Every detector of the visit (``SHUTTERLINE_DETECTORS``, a JSON list).
    traceparent
        W3C trace context of the visit's root span: the analysis joins the visit's trace.
    """
    cspec, block = config["spec"], settings_of(config)
    name = job_name(visit["metadata"]["name"])
    labels = {**builders.visit_labels(visit), LABEL_WORK: WORK}
    kueue = _kueue_labels(cspec, block)
    annotations = {names.ANNOTATION_TRACEPARENT: traceparent}
    pod_annotations = {**(block.get("podAnnotations") or {}), **annotations}
    spec: dict[str, Any] = {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": int(block.get("backoffLimit", 2)),
        "podFailurePolicy": _failure_policy(),
        "activeDeadlineSeconds": int(block.get("deadlineSeconds", 3600)),
        "ttlSecondsAfterFinished": int(cspec.get("ttlSecondsAfterFinished", 3600)),
        # Released by Kueue, or by the built-in queue's gate (`plan_gate`).
        "suspend": True,
        "template": {
            "metadata": {"labels": dict(labels), "annotations": pod_annotations},
            "spec": _pod_spec(visit, config, detectors, traceparent, name),
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": visit["metadata"]["namespace"],
            "labels": {**labels, **kueue},
            "annotations": dict(annotations),
            "ownerReferences": [builders.owner_reference(visit)],
        },
        "spec": spec,
    }


def _failure_policy() -> dict[str, Any]:
    """65 (the products are unusable) fails the Job at once; a preemption (the scheduler
    making room for prompt pods) is no failure; anything else counts against backoffLimit."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [_EXIT_PERMANENT],
                },
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def _kueue_labels(cspec: dict[str, Any], block: dict[str, Any]) -> dict[str, str]:
    queueing = cspec.get("queueing") or {}
    if queueing.get("mode") != "kueue":
        return {}
    queue = block.get("queueName") or queueing["queueName"]
    labels = {names.KUEUE_QUEUE_LABEL: str(queue)}
    if block.get("workloadPriorityClass"):
        labels[names.KUEUE_PRIORITY_LABEL] = str(block["workloadPriorityClass"])
    return labels


def _pod_spec(
    visit: dict[str, Any],
    config: dict[str, Any],
    detectors: Sequence[int],
    traceparent: str,
    job: str,
) -> dict[str, Any]:
    cspec, block = config["spec"], settings_of(config)
    env = builders.worker_env(visit, config, json.dumps(list(detectors)), traceparent, job)
    pod = builders.pod_base(cspec, block.get("priorityClassName", DEFAULT_PRIORITY_CLASS))
    debug = ((cspec.get("debug") or {}).get("commands") or {}).get(CONTAINER)
    resources = {
        kind: {k: str(v) for k, v in values.items()}
        for kind, values in (block.get("resources") or {}).items()
        if kind in ("requests", "limits") and values
    }
    main = builders.worker_container(CONTAINER, debug or _COMMAND, config, env, resources)
    pod["containers"] = [main]
    pod["initContainers"] = []
    # A preempted analysis pod holds its node until it has terminated: keep that short, the
    # prompt pod that preempted it waits for exactly this long at most.
    pod["terminationGracePeriodSeconds"] = int(block.get("terminationGracePeriodSeconds", 5))
    if (cspec.get("telemetry") or {}).get("enabled", True):
        telemetry = builders.worker_container(
            "telemetry",
            ["shutterline", "telemetry"],
            config,
            env,
            builders.container_resources("telemetry", visit, config),
        )
        pod["initContainers"].append(telemetry)
    return pod


@dataclasses.dataclass(frozen=True)
class Gate:
    """What the built-in queue does with the pool's analysis Jobs: release some, suspend
    some (their pods go; the Job runs again once released)."""

    release: list[tuple[str, str]]
    suspend: list[tuple[str, str]]


def plan_gate(
    limit: int,
    prompt_busy: int,
    reserve: int,
    slots: int,
    running: Sequence[tuple[str, tuple[str, str]]],
    waiting: Sequence[tuple[str, tuple[str, str]]],
) -> Gate:
    """Analysis in the built-in queue: it runs only in what the prompt pods leave free.

    Parameters
    ----------
    limit
        ``concurrency.detectors`` of the pool (prompt pods it may run at once).
    prompt_busy
        Detectors the prompt Jobs hold or wait for (running, released now, queued).
    reserve
        Detectors kept free for the next visit, so its pods find room at once instead of
        waiting for analysis pods to be preempted or suspended.
    slots
        Detectors one analysis pod counts for (0: analysis is not counted at all).
    running, waiting
        ``(creationTimestamp, key)`` of the released and of the suspended analysis Jobs.

    The oldest analyses keep their room; the newest are suspended first when prompt work
    needs it. With no prompt work at all, one analysis may run even if the reserve leaves
    no room (a pool whose limit is one visit's demand).
    """
    if slots <= 0:
        return Gate([key for _, key in sorted(waiting)], [])
    room = limit - prompt_busy - reserve
    if prompt_busy == 0:
        room = max(room, slots)
    fits = max(0, room // slots)
    kept = sorted(running)[:fits]
    suspend = [key for _, key in sorted(running)[fits:]]
    release = [key for _, key in sorted(waiting)[: max(0, fits - len(kept))]]
    return Gate(release, suspend)
