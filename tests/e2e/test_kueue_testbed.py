"""Kueue and KWOK on the test bed do what the operator's queueing and the benchmark rely on.

KWOK runs a pod with a regular init container, a native sidecar and a main container through
Pending, Running and Succeeded with the kubelet's container states, and fails one with the exit
code and message its annotations ask for. Kueue suspends a labelled Job on creation (its
webhook, reached by the API server over loopback), admits Jobs under a ClusterQueue quota that
fits one at a time in WorkloadPriorityClass order, steers their pods onto the KWOK nodes through
its ResourceFlavor, and all of them complete.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e import test_testbed_k8s
from tests.e2e.test_testbed_k8s import apply, get, job_condition, statuses, wait_for
from tests.testbed import kueue, kwok
from tests.testbed.k8s import cluster

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

RUN = "kwok.shutterline.io/run-duration"
namespace = test_testbed_k8s.namespace  # the same fresh-namespace fixture


def _in_phase(bed: cluster.Cluster, name: str, namespace: str, phase: str) -> dict[str, Any]:
    """Pod ``name`` once it has reached ``phase`` (fails the test after 30 s)."""

    def reached() -> dict[str, Any] | None:
        pod = get(bed, "pod", name, namespace)
        return pod if pod and pod["status"].get("phase") == phase else None

    return dict(wait_for(reached, 30, f"pod {name} {phase}"))


def _pod(name: str, namespace: str, sim: kwok.Kwok, annotations: dict[str, str]) -> dict[str, Any]:
    container = {"image": "busybox", "command": ["true"]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": sim.node_selector(),
            "tolerations": [sim.toleration()],
            "initContainers": [
                {"name": "precache", **container},
                {"name": "telemetry", "restartPolicy": "Always", **container},
            ],
            "containers": [{"name": "pipeline", **container}],
        },
    }


def test_kwok_runs_init_sidecar_and_main_to_completion(
    k8s_cluster: cluster.Cluster, kwok_nodes: kwok.Kwok, namespace: str
) -> None:
    apply(k8s_cluster, _pod("ok", namespace, kwok_nodes, {RUN: "1500ms"}))
    running = _in_phase(k8s_cluster, "ok", namespace, "Running")
    assert running["spec"]["nodeName"] in kwok_nodes.node_names
    init = statuses(running, "initContainerStatuses")
    assert init["precache"]["state"]["terminated"]["exitCode"] == 0
    assert "running" in init["telemetry"]["state"], init["telemetry"]
    assert "running" in statuses(running, "containerStatuses")["pipeline"]["state"]
    done = _in_phase(k8s_cluster, "ok", namespace, "Succeeded")
    main = statuses(done, "containerStatuses")["pipeline"]["state"]["terminated"]
    assert (main["exitCode"], main["reason"]) == (0, "Completed")
    sidecar = statuses(done, "initContainerStatuses")["telemetry"]["state"]["terminated"]
    assert sidecar["exitCode"] == 0
    started = running["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    assert main["startedAt"] == started, "the main container keeps its start time"


def test_kwok_fails_a_pod_with_the_requested_exit_code(
    k8s_cluster: cluster.Cluster, kwok_nodes: kwok.Kwok, namespace: str
) -> None:
    annotations = {
        RUN: "200ms",
        "kwok.shutterline.io/exit-code": "65",
        "kwok.shutterline.io/message": "no template covers detector 7",
    }
    apply(k8s_cluster, _pod("bad", namespace, kwok_nodes, annotations))
    failed = _in_phase(k8s_cluster, "bad", namespace, "Failed")
    main = statuses(failed, "containerStatuses")["pipeline"]["state"]["terminated"]
    assert (main["exitCode"], main["reason"]) == (65, "Error")
    assert main["message"] == "no template covers detector 7"


def _job(name: str, namespace: str, queue: str, priority: str) -> dict[str, Any]:
    """An Indexed Job of two 500m pods that each run 2 s, queued in ``queue``."""
    container = {
        "name": "pipeline",
        "image": "busybox",
        "command": ["true"],
        "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "kueue.x-k8s.io/queue-name": queue,
                "kueue.x-k8s.io/priority-class": priority,
            },
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": 2,
            "parallelism": 2,
            "template": {
                "metadata": {"annotations": {RUN: "2s"}},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def test_kueue_admits_jobs_in_priority_order_under_quota(
    k8s_cluster: cluster.Cluster,
    kueue_controller: kueue.Kueue,
    kwok_nodes: kwok.Kwok,
    namespace: str,
) -> None:
    queue = kueue_controller.setup_queues(
        namespace,
        {"cpu": "1", "memory": "1Gi"},
        name=f"q-{namespace}",
        node_labels=kwok_nodes.node_selector(),
        tolerations=[kwok_nodes.toleration()],
        hold=True,
    )
    low = kueue_controller.priority_class(f"low-{namespace}", 100)
    high = kueue_controller.priority_class(f"high-{namespace}", 1000)
    # Lined up while the queue holds: two low-priority Jobs, then a high-priority one.
    for name, priority in (("low-a", low), ("low-b", low), ("high", high)):
        apply(k8s_cluster, _job(name, namespace, queue, priority))
        # Kueue breaks priority ties by creation time, which has one-second resolution.
        time.sleep(1.1)
    for name in ("low-a", "low-b", "high"):
        job = get(k8s_cluster, "job", name, namespace)
        assert job is not None and job["spec"]["suspend"] is True, "Kueue's webhook suspends it"
    wait_for(lambda: len(kueue_controller.workloads(namespace)) == 3, 30, "three Workloads")
    kueue_controller.release(queue)
    order, most = kueue_controller.admission_order(namespace, 3, timeout=90)
    assert order == ["high", "low-a", "low-b"], "priority first, then creation order"
    assert most == 2, "the quota fits one Job's two pods at a time"
    priorities = {
        w["metadata"]["ownerReferences"][0]["name"]: w["spec"]["priority"]
        for w in kueue_controller.workloads(namespace)
    }
    assert priorities == {"low-a": 100, "low-b": 100, "high": 1000}
    wait_for(
        lambda: all(job_condition(k8s_cluster, n, namespace) == "Complete" for n in order),
        60,
        "every Job Complete",
    )
    pods = k8s_cluster.kubectl("get", "pods", "-n", namespace, "-o", "jsonpath={..nodeName}")
    assert set(pods.stdout.split()) <= set(kwok_nodes.node_names), "the flavor steers to KWOK"
