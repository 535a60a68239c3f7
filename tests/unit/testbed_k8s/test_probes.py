"""Exec readiness probes on the node agent: not ready until the probe passes, with the mount
path of the probe's command rewritten like the container's own."""

from __future__ import annotations

from pathlib import Path

from tests.unit.testbed_k8s.fakes import make_pod, sh
from tests.unit.testbed_k8s.test_podlifecycle import by_name, run_pod


def test_ready_only_once_the_marker_exists(tmp_path: Path) -> None:
    mount = [{"name": "scratch", "mountPath": "/scratch"}]
    probe = {"exec": {"command": ["test", "-e", "/scratch/work/raw-arrived"]}, "periodSeconds": 0.1}
    pod = make_pod(
        {
            "restartPolicy": "Never",
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [
                sh(
                    "pipeline",
                    "sleep 1; mkdir -p /scratch/work; touch /scratch/work/raw-arrived; sleep 1",
                    volumeMounts=mount,
                    readinessProbe=probe,
                ),
                sh("plain", "sleep 2.5"),
            ],
        }
    )
    _, api = run_pod(pod, tmp_path)
    running = [
        by_name(s, "containerStatuses")["pipeline"]
        for s in api.statuses
        if "running" in by_name(s, "containerStatuses")["pipeline"]["state"]
    ]
    readiness = [s["ready"] for s in running]
    assert readiness[0] is False and readiness[-1] is True
    assert readiness.index(True) == len(readiness) - readiness[::-1].index(False)  # flips once
    plain = [by_name(s, "containerStatuses")["plain"] for s in api.statuses]
    assert all(s["ready"] for s in plain if "running" in s["state"])
    # The pod is Ready only when every container is (the probed one included).
    first_ready = next(
        s for s in api.statuses if by_name(s, "containerStatuses")["pipeline"]["ready"]
    )
    conditions = {c["type"]: c["status"] for c in first_ready["conditions"]}
    assert conditions["Ready"] == "True"
    not_yet = next(s for s in api.statuses if s is not first_ready and s["phase"] == "Running")
    assert {c["type"]: c["status"] for c in not_yet["conditions"]}["Ready"] == "False"
