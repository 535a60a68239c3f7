"""Plain-dict Visits, PromptConfigs, Jobs and pods for the operator's unit tests."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

from tests import examples

__all__ = ["NOW", "TRACEPARENT", "config", "job", "pod", "visit"]

NOW = dt.datetime(2026, 3, 1, 3, 12, 40, tzinfo=dt.UTC)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def visit(name: str = "visit-100007", **spec: Any) -> dict[str, Any]:
    """A Visit as the API server returns it (defaults applied)."""
    body: dict[str, Any] = {
        "apiVersion": "shutterline.io/v1alpha1",
        "kind": "Visit",
        "metadata": {
            "name": name,
            "namespace": "prompt",
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-03-01T03:12:30Z",
            "annotations": {"shutterline.io/traceparent": TRACEPARENT},
        },
        "spec": examples.visit_spec(**{"detectors": [1, 2, 3], **spec}),
    }
    return body


def config(**spec: Any) -> dict[str, Any]:
    """A PromptConfig with Kafka and telemetry."""
    body: dict[str, Any] = {
        "metadata": {"name": "simdecam", "namespace": "prompt"},
        "spec": {
            "instrument": "SimDECam",
            "images": {"pipeline": "ghcr.io/shutterline/shutterline-pipeline:0.1"},
            "backbone": {"repo": "s3://backbone/repo", "credentialsSecret": "backbone-s3"},
            "apdb": {"secret": {"name": "apdb", "key": "url"}},
            "kafka": {"bootstrap": "kafka:9092", "alertTopic": "alerts"},
            "telemetry": {"enabled": True, "otlpEndpoint": "http://jaeger:4318", "hz": 4},
            "resources": {"pipeline": {"requests": {"cpu": "1", "memory": "2Gi"}}},
            "scratch": {"sizeLimit": "8Gi"},
            "retries": {"backoffLimitPerIndex": 2},
            "export": ["calexp"],
            "rawWaitSeconds": 120,
            "ttlSecondsAfterFinished": 600,
            "queueing": {"mode": "builtin"},
            "concurrency": {"detectors": 4},
        },
    }
    body["spec"].update(spec)
    return copy.deepcopy(body)


def job(
    suspend: bool = False,
    completed: str = "",
    failed: str = "",
    conditions: list[dict[str, Any]] | None = None,
    name: str = "visit-100007",
    completions: int = 3,
) -> dict[str, Any]:
    """A Job of ``visit()`` with the given progress."""
    status: dict[str, Any] = {"startTime": "2026-03-01T03:12:31Z"}
    if completed:
        status["completedIndexes"] = completed
    if failed:
        status["failedIndexes"] = failed
    if conditions:
        status["conditions"] = conditions
    return {
        "metadata": {
            "name": name,
            "namespace": "prompt",
            "creationTimestamp": "2026-03-01T03:12:31Z",
            "ownerReferences": [
                {
                    "apiVersion": "shutterline.io/v1alpha1",
                    "kind": "Visit",
                    "name": name,
                    "uid": f"uid-{name}",
                }
            ],
        },
        "spec": {"suspend": suspend, "completions": completions, "parallelism": completions},
        "status": status,
    }


def condition(kind: str, reason: str = "", when: str = "2026-03-01T03:13:20Z") -> dict[str, Any]:
    """A True Job condition."""
    return {"type": kind, "status": "True", "reason": reason, "lastTransitionTime": when}


def _terminated(code: int, message: str = "") -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "message": message,
        }
    }


def pod(
    index: int,
    phase: str = "Running",
    pipeline: str = "running",
    ready: bool = False,
    precache: str = "done",
    exit_code: int = 0,
    record: dict[str, Any] | None = None,
    name: str | None = None,
    created: str = "2026-03-01T03:12:32Z",
) -> dict[str, Any]:
    """A worker pod of index ``index``; ``pipeline``: waiting|running|terminated."""
    message = json.dumps(record) if record is not None else ""
    states = {
        "waiting": {"waiting": {"reason": "PodInitializing"}},
        "running": {"running": {"startedAt": created}},
        "terminated": _terminated(exit_code, message),
    }
    precache_state = {
        "done": _terminated(0),
        "running": {"running": {"startedAt": created}},
        "waiting": {"waiting": {"reason": "PodInitializing"}},
    }[precache]
    return {
        "metadata": {
            "name": name or f"visit-100007-{index}-abcde",
            "namespace": "prompt",
            "creationTimestamp": created,
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
            "labels": {"batch.kubernetes.io/job-name": "visit-100007"},
        },
        "status": {
            "phase": phase,
            "initContainerStatuses": [
                {"name": "telemetry", "ready": True, "state": {"running": {}}},
                {"name": "precache", "ready": False, "state": precache_state},
            ],
            "containerStatuses": [{"name": "pipeline", "ready": ready, "state": states[pipeline]}],
        },
    }
