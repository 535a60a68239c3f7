"""Visit + PromptConfig -> the visit's Indexed Job, as a plain dict.

This is the operator's half of the worker-pod contract in docs/architecture.md ("The worker
pod"): container names and commands, the environment, the scratch volume, exit codes read by
the ``podFailurePolicy``, the trace context. Nothing here talks to the API server.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any

from shutterline_operator.core import envmap, names, timing

__all__ = [
    "SCRATCH",
    "build_job",
    "container_resources",
    "env_config_map",
    "kueue_priority_class",
    "owner_reference",
    "pod_base",
    "scratch_volume",
    "visit_labels",
    "worker_container",
    "worker_env",
]

SCRATCH = "/scratch"
_EXIT_PERMANENT, _EXIT_NO_RAW = 65, 66
_RUN_AS = 10001
# Containers in start order (docs/architecture.md): sidecars first, then the init container.
_COMMANDS = {
    "telemetry": ["shutterline", "telemetry"],
    "alert-relay": ["shutterline", "relay"],
    "precache": ["shutterline", "pod", "precache"],
    "pipeline": ["shutterline", "pod", "run"],
}
_RESOURCE_KEYS = {"alert-relay": "alertRelay"}


def build_job(
    visit: dict[str, Any],
    config: dict[str, Any],
    detectors: Sequence[int],
    traceparent: str,
    now: dt.datetime,
    env_map: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Indexed Job of ``visit`` (created suspended when a queue admits it).

    Parameters
    ----------
    visit, config
        The Visit and its instrument's PromptConfig (``metadata``/``spec`` dicts).
    detectors
        The detectors of the visit; completion index ``i`` processes ``detectors[i]``.
    traceparent
        W3C trace context of the visit's root span, handed to every container.
    now
        The current time: ``activeDeadlineSeconds`` is what is left until the deadline.
    env_map
        The PromptConfig's `env_config_map`, which must exist: every container reads the
        shared variables from it, and the large per-Visit ones from the pod's annotations
        (`envmap`). None: every variable inline in every container.
    """
    meta, cspec = visit["metadata"], config["spec"]
    name = names.job_name(meta["name"])
    labels = visit_labels(visit)
    remaining = (timing.deadline_at(visit["spec"]) - now).total_seconds()
    pod, annotations = _pod_spec(visit, config, detectors, traceparent, name, env_map)
    spec = _job_controls(cspec, len(detectors), remaining)
    spec["template"] = {
        "metadata": {
            "labels": dict(labels),
            "annotations": {names.ANNOTATION_TRACEPARENT: traceparent, **annotations},
        },
        "spec": pod,
    }
    job_labels = {**labels, names.LABEL_PHASE: "Pending", **_kueue_labels(visit, config)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": job_labels,
            "annotations": {names.ANNOTATION_TRACEPARENT: traceparent},
            "ownerReferences": [owner_reference(visit)],
        },
        "spec": spec,
    }


def _job_controls(cspec: dict[str, Any], count: int, remaining: float) -> dict[str, Any]:
    """The Job's own fields: indexes, retries per index, failure policy, deadline, TTL."""
    retries = cspec.get("retries") or {}
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": count,
        "parallelism": min(count, int(cspec.get("parallelism") or count)),
        "backoffLimitPerIndex": int(retries.get("backoffLimitPerIndex", 2)),
        "podFailurePolicy": _failure_policy(),
        "activeDeadlineSeconds": max(1, math.ceil(remaining)),
        "ttlSecondsAfterFinished": int(cspec.get("ttlSecondsAfterFinished", 3600)),
        "suspend": True,
    }
    if "maxFailedIndexes" in retries:
        spec["maxFailedIndexes"] = int(retries["maxFailedIndexes"])
    return spec


def visit_labels(visit: dict[str, Any]) -> dict[str, str]:
    """The labels every child of ``visit`` carries (Jobs, pods)."""
    spec = visit["spec"]
    return {
        names.LABEL_VISIT: names.label_value(visit["metadata"]["name"]),
        names.LABEL_VISIT_ID: str(spec["visitId"]),
        names.LABEL_INSTRUMENT: names.label_value(spec["instrument"]),
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
    }


def owner_reference(visit: dict[str, Any]) -> dict[str, Any]:
    """The controller owner reference to ``visit``: deleting it deletes the child."""
    meta = visit["metadata"]
    return {
        "apiVersion": f"{names.GROUP}/{names.VERSION}",
        "kind": "Visit",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _failure_policy() -> dict[str, Any]:
    """65 (bad data) and 66 (no raw) fail the index at once; disruptions are not failures;
    everything else (75, 69, a kill) counts against ``backoffLimitPerIndex``."""
    return {
        "rules": [
            {
                "action": "FailIndex",
                "onExitCodes": {
                    "containerName": "pipeline",
                    "operator": "In",
                    "values": [_EXIT_PERMANENT, _EXIT_NO_RAW],
                },
            },
            {
                "action": "FailIndex",
                "onExitCodes": {
                    "containerName": "precache",
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


def kueue_priority_class(priority: int, classes: Sequence[dict[str, Any]]) -> str | None:
    """The WorkloadPriorityClass with the highest ``minPriority`` not above ``priority``."""
    fitting = [c for c in classes if int(c["minPriority"]) <= priority]
    if not fitting:
        return None
    return str(max(fitting, key=lambda c: int(c["minPriority"]))["className"])


def _kueue_labels(visit: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    queueing = config["spec"].get("queueing") or {}
    if queueing.get("mode") != "kueue":
        return {}
    labels = {names.KUEUE_QUEUE_LABEL: str(queueing["queueName"])}
    priority = int(visit["spec"].get("priority", 0))
    klass = kueue_priority_class(priority, queueing.get("priorityClasses") or [])
    if klass:
        labels[names.KUEUE_PRIORITY_LABEL] = klass
    return labels


def _pod_spec(
    visit: dict[str, Any],
    config: dict[str, Any],
    detectors: Sequence[int],
    traceparent: str,
    job: str,
    env_map: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The pod template's spec, and the annotations its environment refers to."""
    cspec = config["spec"]
    env = worker_env(visit, config, ",".join(str(d) for d in detectors), traceparent, job)
    annotations: dict[str, str] = {}
    if env_map is not None:
        env, annotations = envmap.visit_refs(envmap.slim_env(env, env_map["data"]))
    wanted = ["precache", "pipeline"]
    if (cspec.get("telemetry") or {}).get("enabled", True):
        wanted.insert(0, "telemetry")
    if cspec.get("kafka"):
        wanted.insert(len(wanted) - 2, "alert-relay")
    built = {c: _container(c, visit, config, env) for c in wanted}
    if env_map is not None:
        for container in built.values():
            container["envFrom"].append({"configMapRef": {"name": env_map["metadata"]["name"]}})
    pod = pod_base(cspec, cspec.get("priorityClassName"))
    pod["initContainers"] = [built[c] for c in wanted if c != "pipeline"]
    pod["containers"] = [built["pipeline"]]
    return pod, annotations


def env_config_map(config: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap of the variables every worker pod of ``config`` shares (`envmap`)."""
    return envmap.config_map(config, worker_env({"spec": {}}, config, "", "", ""))


def pod_base(cspec: dict[str, Any], priority_class: str | None) -> dict[str, Any]:
    """What every worker pod shares: restricted security, no token, the scratch volume, the
    pull secrets and service account of the PromptConfig ``cspec``, a PriorityClass."""
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "shareProcessNamespace": True,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _RUN_AS,
            "runAsGroup": _RUN_AS,
            "fsGroup": _RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [scratch_volume(cspec.get("scratch") or {})],
    }
    if priority_class:
        pod["priorityClassName"] = str(priority_class)
    if cspec.get("serviceAccountName"):
        pod["serviceAccountName"] = cspec["serviceAccountName"]
    secrets = (cspec.get("images") or {}).get("pullSecrets") or []
    if secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in secrets]
    return pod


def scratch_volume(scratch: dict[str, Any]) -> dict[str, Any]:
    """The pod's one ephemeral volume (``scratch`` of the PromptConfig)."""
    size = str(scratch.get("sizeLimit", "20Gi"))
    if not scratch.get("storageClassName"):
        return {"name": "scratch", "emptyDir": {"sizeLimit": size}}
    claim = {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": scratch["storageClassName"],
        "resources": {"requests": {"storage": size}},
    }
    return {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": claim}}}


def _container(
    name: str, visit: dict[str, Any], config: dict[str, Any], env: list[dict[str, Any]]
) -> dict[str, Any]:
    debug = ((config["spec"].get("debug") or {}).get("commands") or {}).get(name)
    resources = container_resources(name, visit, config)
    container = worker_container(name, debug or _COMMANDS[name], config, env, resources)
    if name == "pipeline":
        container["readinessProbe"] = {
            "exec": {"command": ["test", "-e", names.RAW_MARKER]},
            "periodSeconds": 1,
            "failureThreshold": 1,
            "successThreshold": 1,
        }
    return container


def worker_container(
    name: str,
    command: Sequence[str],
    config: dict[str, Any],
    env: list[dict[str, Any]],
    resources: dict[str, Any],
) -> dict[str, Any]:
    """A container of the pipeline image running ``command``, restricted, with the scratch
    volume and the backbone Secret; ``telemetry`` and ``alert-relay`` as native sidecars."""
    cspec = config["spec"]
    images = cspec["images"]
    container: dict[str, Any] = {
        "name": name,
        "image": images["pipeline"],
        "imagePullPolicy": images.get("pullPolicy", "IfNotPresent"),
        "command": list(command),
        "env": [{"name": "CONTAINER_NAME", "value": name}, *env],
        "envFrom": [{"secretRef": {"name": cspec["backbone"]["credentialsSecret"]}}],
        "volumeMounts": [
            {"name": "scratch", "mountPath": SCRATCH},
            {"name": "scratch", "mountPath": f"{SCRATCH}/tmp", "subPath": "tmp"},
        ],
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if name in ("telemetry", "alert-relay"):
        container["restartPolicy"] = "Always"
        container["env"].append({"name": "SHUTTERLINE_NATIVE_SIDECAR", "value": "1"})
    return container


def container_resources(name: str, visit: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Requests/limits of container ``name``: the PromptConfig's, a Visit's overrides win."""
    key = _RESOURCE_KEYS.get(name, name)
    base = (config["spec"].get("resources") or {}).get(key) or {}
    override = ((visit["spec"].get("overrides") or {}).get("resources") or {}).get(key) or {}
    merged: dict[str, Any] = {}
    for kind in ("requests", "limits"):
        values = {**(base.get(kind) or {}), **(override.get(kind) or {})}
        if values:
            merged[kind] = {k: str(v) for k, v in values.items()}
    return merged


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def worker_env(
    visit: dict[str, Any],
    config: dict[str, Any],
    detectors: str,
    traceparent: str,
    job: str,
) -> list[dict[str, Any]]:
    """Every container's environment (docs/architecture.md); secrets by reference only.

    ``detectors`` is ``SHUTTERLINE_DETECTORS`` as the pod's command reads it.
    """
    cspec, vspec = config["spec"], visit["spec"]
    apdb = cspec["apdb"]["secret"]
    env: list[dict[str, Any]] = [
        _field("POD_NAME", "metadata.name"),
        _field("POD_NAMESPACE", "metadata.namespace"),
        _field("NODE_NAME", "spec.nodeName"),
        {"name": "JOB_NAME", "value": job},
        {"name": "SHUTTERLINE_REPO", "value": cspec["backbone"]["repo"]},
        {
            "name": "SHUTTERLINE_APDB",
            "valueFrom": {"secretKeyRef": {"name": apdb["name"], "key": apdb.get("key", "url")}},
        },
        {"name": "SHUTTERLINE_SPOOL", "value": f"{SCRATCH}/spool"},
        {"name": "SHUTTERLINE_WORKDIR", "value": f"{SCRATCH}/work"},
        {"name": "SHUTTERLINE_EXPORT", "value": ",".join(cspec.get("export") or [])},
        {"name": "SHUTTERLINE_RAW_WAIT_S", "value": str(cspec.get("rawWaitSeconds", 600))},
        {"name": "SHUTTERLINE_VISIT_SPEC", "value": json.dumps(vspec, sort_keys=True)},
        {"name": "SHUTTERLINE_DETECTORS", "value": detectors},
        {"name": "TRACEPARENT", "value": traceparent},
        {"name": "TMPDIR", "value": f"{SCRATCH}/tmp"},
    ]
    env += _optional_env(cspec)
    overrides = (vspec.get("overrides") or {}).get("settings") or {}
    settings = {**(cspec.get("settings") or {}), **overrides}
    env += [{"name": k, "value": str(v)} for k, v in sorted(settings.items())]
    attributes = (
        "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),"
        f"k8s.node.name=$(NODE_NAME),k8s.job.name={job},k8s.container.name=$(CONTAINER_NAME)"
    )
    return [*env, {"name": "OTEL_RESOURCE_ATTRIBUTES", "value": attributes}]


def _optional_env(cspec: dict[str, Any]) -> list[dict[str, Any]]:
    """Variables only set when the PromptConfig names the service."""
    kafka, telemetry = cspec.get("kafka") or {}, cspec.get("telemetry") or {}
    values = {
        "S3_ENDPOINT_URL": cspec["backbone"].get("s3Endpoint"),
        "SHUTTERLINE_KAFKA_BOOTSTRAP": kafka.get("bootstrap"),
        "SHUTTERLINE_ALERT_TOPIC": kafka.get("alertTopic"),
        "SHUTTERLINE_METRICS_TOPIC": kafka.get("metricsTopic"),
        "SHUTTERLINE_SCHEMA_REGISTRY_URL": kafka.get("schemaRegistryUrl"),
        "SHUTTERLINE_RELAY_GIVE_UP_S": kafka.get("relayGiveUpSeconds"),
        "SHUTTERLINE_TELEMETRY_HZ": telemetry.get("hz"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": telemetry.get("otlpEndpoint"),
    }
    return [{"name": k, "value": str(v)} for k, v in values.items() if v is not None]
