"""The analysis Job builder: one pod per visit, the prompt pod's contract, lower priority."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate

from shutterline_operator.core import analysis, builders, names
from shutterline_operator.engine import admission
from shutterline_operator.engine import cache as vcache
from tests.unit.operator import objects


def _config(**block: Any) -> dict[str, Any]:
    return objects.config(analysis={"enabled": True, **block})


def _build(config: dict[str, Any] | None = None) -> dict[str, Any]:
    return analysis.build_analysis_job(
        objects.visit(), config or _config(), [1, 2, 3], objects.TRACEPARENT
    )


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_analysis_job_is_valid_kubernetes_1_33() -> None:
    kubernetes_validate.validate(_build(), "1.33", strict=True)
    kueue = objects.config(
        queueing={"mode": "kueue", "queueName": "prompt"},
        analysis={"enabled": True, "queueName": "analysis", "workloadPriorityClass": "low"},
    )
    kubernetes_validate.validate(_build(kueue), "1.33", strict=True)


def test_one_pod_per_visit_owned_by_the_visit_and_labelled_as_analysis() -> None:
    job = _build()
    spec = job["spec"]
    assert job["metadata"]["name"] == "visit-100007-analysis"
    assert "completionMode" not in spec and spec["completions"] == spec["parallelism"] == 1
    assert spec["suspend"] is True  # released by the built-in queue's gate (or Kueue)
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Visit", "uid-visit-100007", True)
    for labels in (job["metadata"]["labels"], spec["template"]["metadata"]["labels"]):
        assert labels[analysis.LABEL_WORK] == "analysis"
        assert labels[names.LABEL_VISIT] == "visit-100007"
        assert labels[names.LABEL_MANAGED_BY] == names.MANAGED_BY
    assert analysis.is_analysis_job(job)
    prompt = builders.build_job(
        objects.visit(), _config(), [1, 2, 3], objects.TRACEPARENT, objects.NOW
    )
    assert not analysis.is_analysis_job(prompt)
    assert spec["activeDeadlineSeconds"] == 3600 and spec["backoffLimit"] == 2
    assert spec["ttlSecondsAfterFinished"] == 600


def test_pod_has_the_analyze_command_the_telemetry_sidecar_and_no_relay() -> None:
    pod = _build()["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["telemetry"]
    assert pod["initContainers"][0]["restartPolicy"] == "Always"
    (main,) = pod["containers"]
    assert (main["name"], main["command"]) == ("analysis", ["shutterline", "pod", "analyze"])
    assert "readinessProbe" not in main
    assert pod["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "8Gi"}}]
    assert {m["mountPath"] for m in main["volumeMounts"]} == {"/scratch", "/scratch/tmp"}
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] == 5  # what a preempting prompt pod waits
    no_telemetry = objects.config(analysis={"enabled": True}, telemetry={"enabled": False})
    assert _build(no_telemetry)["spec"]["template"]["spec"]["initContainers"] == []


def test_environment_is_the_prompt_pods_with_every_detector_as_a_json_list() -> None:
    job = _build()
    env = _env(job["spec"]["template"]["spec"]["containers"][0])
    prompt = builders.build_job(
        objects.visit(), _config(), [1, 2, 3], objects.TRACEPARENT, objects.NOW
    )
    prompt_env = _env(prompt["spec"]["template"]["spec"]["containers"][0])
    assert json.loads(env["SHUTTERLINE_DETECTORS"]) == [1, 2, 3]
    assert json.loads(env["SHUTTERLINE_VISIT_SPEC"]) == objects.visit()["spec"]
    assert env["TRACEPARENT"] == objects.TRACEPARENT
    assert env["JOB_NAME"] == "visit-100007-analysis"
    assert env["CONTAINER_NAME"] == "analysis"
    same = set(prompt_env) - {"SHUTTERLINE_DETECTORS", "JOB_NAME", "OTEL_RESOURCE_ATTRIBUTES"}
    assert {k: env[k] for k in same if k != "CONTAINER_NAME"} == {
        k: prompt_env[k] for k in same if k != "CONTAINER_NAME"
    }
    assert env["SHUTTERLINE_APDB"] == {"secretKeyRef": {"name": "apdb", "key": "url"}}


def test_priority_below_the_prompt_pods() -> None:
    prompt_config = _config()
    prompt_config["spec"]["priorityClassName"] = "shutterline-prompt"
    prompt = builders.build_job(
        objects.visit(), prompt_config, [1, 2, 3], objects.TRACEPARENT, objects.NOW
    )
    assert prompt["spec"]["template"]["spec"]["priorityClassName"] == "shutterline-prompt"
    default = _build()["spec"]["template"]["spec"]
    assert default["priorityClassName"] == analysis.DEFAULT_PRIORITY_CLASS
    chosen = _build(_config(priorityClassName="site-low"))["spec"]["template"]["spec"]
    assert chosen["priorityClassName"] == "site-low"
    bare = builders.build_job(objects.visit(), _config(), [1], objects.TRACEPARENT, objects.NOW)
    assert "priorityClassName" not in bare["spec"]["template"]["spec"]


def test_preemption_is_no_failure_and_exit_65_fails_the_job_at_once() -> None:
    rules = _build()["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[0]["onExitCodes"] == {
        "containerName": "analysis",
        "operator": "In",
        "values": [65],
    }
    assert rules[1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_resources_annotations_command_and_retries_come_from_the_analysis_block() -> None:
    config = _config(
        resources={"requests": {"cpu": 2, "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
        podAnnotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
        backoffLimit=5,
        deadlineSeconds=900,
        terminationGracePeriodSeconds=2,
    )
    config["spec"]["debug"] = {"commands": {"analysis": ["sh", "-c", "true"]}}
    job = _build(config)
    template = job["spec"]["template"]
    main = template["spec"]["containers"][0]
    assert main["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "8Gi"},
    }
    assert main["command"] == ["sh", "-c", "true"]
    annotations = template["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true"
    assert annotations[names.ANNOTATION_TRACEPARENT] == objects.TRACEPARENT
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (5, 900)
    assert template["spec"]["terminationGracePeriodSeconds"] == 2


def test_kueue_gets_its_own_queue_and_lower_workload_priority_class() -> None:
    config = objects.config(
        queueing={"mode": "kueue", "queueName": "prompt-q"},
        analysis={"enabled": True, "queueName": "analysis-q", "workloadPriorityClass": "qa-low"},
    )
    job = _build(config)
    labels = job["metadata"]["labels"]
    assert labels[names.KUEUE_QUEUE_LABEL] == "analysis-q"
    assert labels[names.KUEUE_PRIORITY_LABEL] == "qa-low"
    assert job["spec"]["suspend"] is True
    fallback = objects.config(
        queueing={"mode": "kueue", "queueName": "prompt-q"}, analysis={"enabled": True}
    )
    labels = _build(fallback)["metadata"]["labels"]
    assert labels[names.KUEUE_QUEUE_LABEL] == "prompt-q"
    assert names.KUEUE_PRIORITY_LABEL not in labels


def test_job_names_are_deterministic_distinct_and_short_enough() -> None:
    assert analysis.job_name("visit-100007") == "visit-100007-analysis"
    long = "v" * 80
    name = analysis.job_name(long)
    assert len(name) <= 57 and name.endswith("-analysis") and name == analysis.job_name(long)
    assert analysis.job_name(long) != analysis.job_name("v" * 79)
    assert analysis.job_name(long) != names.job_name(long)


def test_due_only_after_a_prompt_job_with_products_and_once() -> None:
    visit, config = objects.visit(), _config()
    assert analysis.due(visit, {"phase": "Succeeded"}, config)
    assert analysis.due(visit, {"phase": "PartiallySucceeded"}, config)
    for phase in ("Processing", "Failed", "TimedOut", "Rejected", "Queued"):
        assert not analysis.due(visit, {"phase": phase}, config)
    assert not analysis.due(visit, {"phase": "Succeeded", "analysis": {"phase": "Pending"}}, config)
    assert not analysis.due(visit, {"phase": "Succeeded"}, objects.config())
    assert not analysis.due(visit, {"phase": "Succeeded"}, None)
    deleting = objects.visit()
    deleting["metadata"]["deletionTimestamp"] = "2026-03-01T03:20:00Z"
    assert not analysis.due(deleting, {"phase": "Succeeded"}, config)


def test_the_built_in_queue_leaves_analysis_jobs_out() -> None:
    cache = vcache.Cache()
    cache.put_visit(objects.visit())
    prompt = objects.job()
    job = _build()
    job["metadata"]["creationTimestamp"] = "2026-03-01T03:13:30Z"
    cache.put_job(prompt)
    cache.put_job(job)
    pools = admission._pools(cache)
    assert [j["metadata"]["name"] for j, _ in pools[("prompt", "SimDECam")]] == ["visit-100007"]
    cache.put_job(prompt, deleted=True)  # its TTL passed: the pool stays, for the gate
    assert admission._pools(cache) == {("prompt", "SimDECam"): []}


def _gate(busy: int, running: int, waiting: int, limit: int = 8, reserve: int = 4) -> Any:
    run = [(f"2026-03-01T03:0{i}:00Z", ("prompt", f"r{i}")) for i in range(running)]
    wait = [(f"2026-03-01T03:1{i}:00Z", ("prompt", f"w{i}")) for i in range(waiting)]
    return analysis.plan_gate(limit, busy, reserve, 1, run, wait)


def test_gate_runs_analysis_only_in_what_the_prompt_pods_and_the_reserve_leave() -> None:
    # 8 detectors, a visit of 4 kept in reserve: 2 running prompt pods leave room for 2.
    gate = _gate(busy=2, running=1, waiting=3)
    assert (gate.release, gate.suspend) == ([("prompt", "w0")], [])
    # A visit of 4 arrives (busy 6): the reserve is used; the newest analyses give way.
    gate = _gate(busy=6, running=2, waiting=1)
    assert (gate.release, gate.suspend) == ([], [("prompt", "r0"), ("prompt", "r1")])
    gate = _gate(busy=5, running=2, waiting=0, reserve=2)
    assert gate.suspend == [("prompt", "r1")]  # the oldest keeps its room
    # No prompt work at all: one analysis even where the reserve is the whole limit.
    gate = _gate(busy=0, running=0, waiting=2, limit=1, reserve=1)
    assert gate.release == [("prompt", "w0")]
    assert _gate(busy=1, running=1, waiting=0, limit=1, reserve=1).suspend == [("prompt", "r0")]
    # Not counted (slots 0): every waiting analysis goes.
    unlimited = analysis.plan_gate(1, 1, 1, 0, [], [("b", ("p", "b")), ("a", ("p", "a"))])
    assert unlimited.release == [("p", "a"), ("p", "b")]
