"""The node agent's event handling: start a worker, stop it on deletion, finish deletions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

from tests.testbed.k8s import kubeapi, nodeagent
from tests.unit.testbed_k8s.fakes import RecordingApi, make_pod, sh


def agent_with(api: RecordingApi, tmp_path: Path) -> nodeagent.NodeAgent:
    return nodeagent.NodeAgent(cast(kubeapi.NodeApi, api), "n0", tmp_path, {"cpu": "4"})


def wait(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_deleted_running_pod_is_stopped_then_removed_with_grace_zero(tmp_path: Path) -> None:
    api = RecordingApi()
    agent = agent_with(api, tmp_path)
    pod = make_pod({"restartPolicy": "Never", "containers": [sh("main", "sleep 60")]})
    agent.sync(pod)
    worker = agent.workers["uid-p"]
    assert wait(lambda: worker.mains[0].state == "running")
    agent.sync(pod)  # a repeated event starts nothing new
    assert agent.workers["uid-p"] is worker
    deleting = {
        **pod,
        "metadata": {
            **pod["metadata"],
            "deletionTimestamp": "now",
            "deletionGracePeriodSeconds": 2,
        },
    }
    agent.sync(deleting)
    assert wait(lambda: api.deleted == ["p"])
    assert api.last["phase"] == "Failed"


def test_finished_pod_is_not_rerun_and_its_deletion_is_finished(tmp_path: Path) -> None:
    api = RecordingApi()
    agent = agent_with(api, tmp_path)
    pod = make_pod({"restartPolicy": "Never", "containers": [sh("main", "true")]})
    pod["status"] = {"phase": "Succeeded"}
    agent.sync(pod)
    assert agent.workers == {}
    pod["metadata"]["deletionTimestamp"] = "now"
    agent.sync(pod)
    agent.sync(pod)
    assert api.deleted == ["p"]


def test_node_status_is_ready_with_capacity_and_stable_transition_time() -> None:
    status = nodeagent.node_status("n0", {"cpu": "4", "pods": "10"}, "2026-01-01T00:00:00Z")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert status["allocatable"] == {"cpu": "4", "pods": "10"}
    assert status["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.1"}
