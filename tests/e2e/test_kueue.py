"""The operator's ``queueing: kueue`` path against a real Kueue controller on the test bed.

With ``queueing.mode: kueue`` the operator labels each Visit's Job with the LocalQueue
(``kueue.x-k8s.io/queue-name``) and the WorkloadPriorityClass its ``priorityClasses`` pick
(``kueue.x-k8s.io/priority-class``) and leaves the Job suspended; the Visits show ``Queued``
with Kueue as the reason. Kueue then admits one Visit at a time (the ClusterQueue's quota fits
one visit's pods) in priority order, ties by creation time; its ResourceFlavor puts the pods on
KWOK nodes, where they run and complete; every Visit ends ``Succeeded``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.operatorbed import (
    apply,
    items,
    make_config,
    make_visit,
    stand_in,
    visit_status,
    wait_phase,
)
from tests.e2e.test_testbed_k8s import wait_for
from tests.testbed import kueue, kwok
from tests.testbed.k8s import cluster

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

Bed = tuple[cluster.Cluster, Any]
# Every container of a worker pod asks for this; two detectors make one visit's quota.
REQUESTS = {"cpu": "500m", "memory": "256Mi"}
QUOTA = {"cpu": "1", "memory": "512Mi"}


def _kueue_config(namespace: str, queue: str, low: str, high: str) -> dict[str, Any]:
    resources = {name: {"requests": REQUESTS} for name in ("precache", "pipeline")}
    queueing = {
        "mode": "kueue",
        "queueName": queue,
        "priorityClasses": [
            {"minPriority": 0, "className": low},
            {"minPriority": 10, "className": high},
        ],
    }
    return make_config(namespace, queueing=queueing, resources=resources, debug=stand_in("true"))


def test_kueue_admits_visits_in_priority_order_under_quota(
    operator_bed: Bed,
    prompt_namespace: str,
    kueue_controller: kueue.Kueue,
    kwok_nodes: kwok.Kwok,
) -> None:
    bed, ns = operator_bed[0], prompt_namespace
    queue = kueue_controller.setup_queues(
        ns,
        QUOTA,
        name=f"q-{ns}",
        node_labels=kwok_nodes.node_selector(),
        tolerations=[kwok_nodes.toleration()],
        hold=True,
    )
    low = kueue_controller.priority_class(f"low-{ns}", 100)
    high = kueue_controller.priority_class(f"high-{ns}", 1000)
    apply(bed, _kueue_config(ns, queue, low, high))
    # Lined up while the ClusterQueue holds; Kueue breaks priority ties by creation time,
    # which has one-second resolution.
    for name, priority in (("low-a", 0), ("low-b", 5), ("high", 20)):
        apply(bed, make_visit(name, ns, detectors=[1, 2], priority=priority))
        time.sleep(1.1)
    for name in ("low-a", "low-b", "high"):
        status = wait_phase(bed, name, ns, ("Queued",), 30)
        assert "Kueue" in status["message"], status
    jobs = {j["metadata"]["ownerReferences"][0]["name"]: j for j in items(bed, "jobs", ns)}
    assert {
        n: j["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] for n, j in jobs.items()
    } == {
        "low-a": low,
        "low-b": low,
        "high": high,
    }
    assert all(j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == queue for j in jobs.values())
    assert all(j["spec"]["suspend"] for j in jobs.values()), "nothing runs before admission"
    wait_for(lambda: len(kueue_controller.workloads(ns)) == 3, 30, "three Kueue Workloads")
    kueue_controller.release(queue)
    order, most = kueue_controller.admission_order(ns, 3, timeout=120)
    by_job = {j["metadata"]["name"]: owner for owner, j in jobs.items()}
    assert [by_job[name] for name in order] == ["high", "low-a", "low-b"]
    assert most == 2, "the quota fits one visit's two pods at a time"
    for name in ("high", "low-a", "low-b"):
        status = wait_phase(bed, name, ns, ("Succeeded", "Failed", "TimedOut"), 60)
        assert status["phase"] == "Succeeded", status
        assert status["progress"] == "2/2"
    pods = bed.kubectl("get", "pods", "-n", ns, "-o", "jsonpath={..nodeName}")
    assert set(pods.stdout.split()) <= set(kwok_nodes.node_names)
    assert visit_status(bed, "high", ns)["startedAt"] <= visit_status(bed, "low-a", ns)["startedAt"]
