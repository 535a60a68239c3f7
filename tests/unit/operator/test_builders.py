"""The Job builder honours the worker-pod contract of docs/architecture.md."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import kubernetes_validate
import pytest

from shutterline.pipeline import settings
from shutterline_operator.core import builders, names
from tests.unit.operator import objects


def _build(visit: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> Any:
    return builders.build_job(
        visit or objects.visit(),
        config or objects.config(),
        [1, 2, 3],
        objects.TRACEPARENT,
        objects.NOW,
    )


def _containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pod = job["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*pod["initContainers"], *pod["containers"]]}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_job_is_valid_kubernetes_1_33() -> None:
    kubernetes_validate.validate(_build(), "1.33", strict=True)


def test_indexed_job_shape() -> None:
    job = _build()
    spec = job["spec"]
    assert job["metadata"]["name"] == "visit-100007"
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 3
    assert spec["backoffLimitPerIndex"] == 2
    assert spec["ttlSecondsAfterFinished"] == 600
    assert spec["suspend"] is True
    # Deadline: shutter close 03:13:15.123 + 60 s, seen from 03:12:40 -> 96 s (rounded up).
    assert spec["activeDeadlineSeconds"] == 96
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Visit", "uid-visit-100007", True)
    labels = job["metadata"]["labels"]
    assert labels[names.LABEL_VISIT] == "visit-100007"
    assert labels[names.LABEL_INSTRUMENT] == "SimDECam"
    assert labels[names.LABEL_PHASE] == "Pending"
    pod_labels = spec["template"]["metadata"]["labels"]
    assert pod_labels[names.LABEL_MANAGED_BY] == names.MANAGED_BY


def test_failure_policy_fails_index_on_permanent_and_no_raw_ignores_disruption() -> None:
    rules = _build()["spec"]["podFailurePolicy"]["rules"]
    by_container = {r["onExitCodes"]["containerName"]: r for r in rules if "onExitCodes" in r}
    assert by_container["pipeline"]["action"] == "FailIndex"
    assert by_container["pipeline"]["onExitCodes"]["values"] == [65, 66]
    assert by_container["precache"]["onExitCodes"]["values"] == [65]
    ignore = [r for r in rules if r["action"] == "Ignore"]
    assert ignore[0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert 75 not in by_container["pipeline"]["onExitCodes"]["values"]


def test_containers_in_start_order_with_native_sidecars() -> None:
    pod = _build()["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["telemetry", "alert-relay", "precache"]
    assert [c["name"] for c in pod["containers"]] == ["pipeline"]
    sidecars = {c["name"]: c.get("restartPolicy") for c in pod["initContainers"]}
    assert sidecars == {"telemetry": "Always", "alert-relay": "Always", "precache": None}
    commands = {c["name"]: c["command"] for c in [*pod["initContainers"], *pod["containers"]]}
    assert commands["pipeline"] == ["shutterline", "pod", "run"]
    assert commands["precache"] == ["shutterline", "pod", "precache"]
    assert pod["shareProcessNamespace"] is True
    assert pod["restartPolicy"] == "Never"


def test_no_kafka_no_relay_and_telemetry_can_be_off() -> None:
    config = objects.config(telemetry={"enabled": False})
    del config["spec"]["kafka"]
    names_ = [
        c["name"] for c in _build(config=config)["spec"]["template"]["spec"]["initContainers"]
    ]
    assert names_ == ["precache"]


def test_restricted_pod_security() -> None:
    pod = _build()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in _containers(_build()).values():
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}


def test_environment_is_the_settings_contract_and_secrets_are_references() -> None:
    job = _build()
    for name, container in _containers(job).items():
        env = _env(container)
        assert env["SHUTTERLINE_DETECTORS"] == "1,2,3"
        assert env["TRACEPARENT"] == objects.TRACEPARENT
        assert json.loads(env["SHUTTERLINE_VISIT_SPEC"]) == objects.visit()["spec"]
        assert env["SHUTTERLINE_APDB"] == {"secretKeyRef": {"name": "apdb", "key": "url"}}
        assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
        assert env["JOB_NAME"] == "visit-100007"
        assert env["CONTAINER_NAME"] == name
        assert "k8s.pod.name=$(POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]
        assert container["envFrom"] == [{"secretRef": {"name": "backbone-s3"}}]
        # Every SHUTTERLINE_* variable set is one the pipeline's Settings reads.
        known = {*settings.ENV.values(), "SHUTTERLINE_VISIT_SPEC", "SHUTTERLINE_DETECTORS"}
        assert {k for k in env if k.startswith("SHUTTERLINE_")} <= known
    settings_from_pod = settings.Settings.from_env(
        {k: v for k, v in _env(_containers(job)["pipeline"]).items() if isinstance(v, str)}
        | {"SHUTTERLINE_APDB": "postgresql://apdb"}
    )
    assert settings_from_pod.raw_wait_s == 120.0
    assert settings_from_pod.export == ("calexp",)
    assert settings_from_pod.kafka_bootstrap == "kafka:9092"


def test_scratch_volume_mounted_everywhere_with_size_limit() -> None:
    job = _build()
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "scratch", "emptyDir": {"sizeLimit": "8Gi"}}]
    for container in _containers(job).values():
        assert {"name": "scratch", "mountPath": "/scratch"} in container["volumeMounts"]
    config = objects.config(scratch={"sizeLimit": "8Gi", "storageClassName": "local-path"})
    volume = _build(config=config)["spec"]["template"]["spec"]["volumes"][0]
    claim = volume["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "local-path"
    assert claim["resources"]["requests"]["storage"] == "8Gi"


def test_pipeline_readiness_is_the_raw_marker() -> None:
    probe = _containers(_build())["pipeline"]["readinessProbe"]
    assert probe["exec"]["command"] == ["test", "-e", names.RAW_MARKER]
    assert names.RAW_MARKER.startswith(builders.SCRATCH + "/work/")


def test_overrides_win_over_config() -> None:
    visit = objects.visit(
        overrides={
            "settings": {"SHUTTERLINE_PADDING_ARCSEC": "45"},
            "resources": {"pipeline": {"limits": {"memory": "4Gi"}}},
        }
    )
    pipeline = _containers(_build(visit=visit))["pipeline"]
    assert _env(pipeline)["SHUTTERLINE_PADDING_ARCSEC"] == "45"
    assert pipeline["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"memory": "4Gi"},
    }


def test_kueue_labels_and_priority_class() -> None:
    classes = [{"minPriority": 0, "className": "normal"}, {"minPriority": 10, "className": "rush"}]
    config = objects.config(
        queueing={"mode": "kueue", "queueName": "prompt", "priorityClasses": classes}
    )
    labels = _build(visit=objects.visit(priority=12), config=config)["metadata"]["labels"]
    assert labels[names.KUEUE_QUEUE_LABEL] == "prompt"
    assert labels[names.KUEUE_PRIORITY_LABEL] == "rush"
    assert builders.kueue_priority_class(-5, classes) is None
    assert names.KUEUE_QUEUE_LABEL not in _build()["metadata"]["labels"]


def test_deadline_never_below_one_second() -> None:
    late = objects.NOW + dt.timedelta(hours=1)
    job = builders.build_job(objects.visit(), objects.config(), [1], objects.TRACEPARENT, late)
    assert job["spec"]["activeDeadlineSeconds"] == 1


@pytest.mark.parametrize("length", [10, 52, 53, 200])
def test_job_names_are_deterministic_and_short(length: int) -> None:
    name = "v" * length
    assert names.job_name(name) == names.job_name(name)
    assert len(names.job_name(name)) <= 52
    assert names.job_name("a" * 60) != names.job_name("a" * 61)
