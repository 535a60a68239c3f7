"""The node agent's pod lifecycle, run with real processes against a recording fake API."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, cast

from tests.testbed.k8s import kubeapi, podlifecycle
from tests.unit.testbed_k8s.fakes import RecordingApi, make_pod, sh


def run_pod(
    pod: dict[str, Any], tmp_path: Path, api: RecordingApi | None = None, timeout: float = 20
) -> tuple[podlifecycle.PodWorker, RecordingApi]:
    api = api or RecordingApi()
    context = podlifecycle.AgentContext(
        cast(kubeapi.NodeApi, api), tmp_path, "n0", backoff_base=0.05, backoff_max=0.2
    )
    worker = podlifecycle.PodWorker(pod, context)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), "pod did not finish"
    return worker, api


def by_name(status: dict[str, Any], field: str) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in status.get(field, [])}


def group_gone(pgid: int, within: float) -> bool:
    """Whether process group ``pgid`` is empty (signals are delivered asynchronously)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_init_sidecar_and_main_run_in_order_and_sidecar_stops_after_main(
    tmp_path: Path,
) -> None:
    mount = [{"name": "w", "mountPath": "/w"}]
    pod = make_pod(
        {
            "restartPolicy": "Never",
            "volumes": [{"name": "w", "emptyDir": {}}],
            "initContainers": [
                sh("first", "echo 1 >> /w/order", volumeMounts=mount),
                sh(
                    "side",
                    "trap 'echo side-stop >> /w/order; exit 0' TERM; echo side >> /w/order;"
                    " while true; do sleep 0.05; done",
                    volumeMounts=mount,
                    restartPolicy="Always",
                ),
            ],
            "containers": [sh("main", "sleep 0.3; echo main >> /w/order", volumeMounts=mount)],
        }
    )
    worker, api = run_pod(pod, tmp_path)
    assert api.last["phase"] == "Succeeded"
    main_pid = int((worker.directory / "pids" / "main").read_text())
    assert by_name(api.last, "containerStatuses")["main"]["containerID"] == f"testbed://{main_pid}"
    order = (worker.directory / "volumes" / "w" / "order").read_text().split()
    assert order == ["1", "side", "main", "side-stop"]
    side = by_name(api.last, "initContainerStatuses")["side"]
    assert side["state"]["terminated"]["exitCode"] == 0
    assert group_gone(int(side["containerID"].removeprefix("testbed://")), within=5.0)
    conditions = {c["type"]: c["status"] for c in api.last["conditions"]}
    assert conditions["Initialized"] == "True" and conditions["Ready"] == "False"


def test_failed_init_container_fails_the_pod_under_restart_never(tmp_path: Path) -> None:
    pod = make_pod(
        {
            "restartPolicy": "Never",
            "initContainers": [sh("init", "exit 7")],
            "containers": [sh("main", "echo never")],
        }
    )
    _, api = run_pod(pod, tmp_path)
    assert api.last["phase"] == "Failed"
    init = by_name(api.last, "initContainerStatuses")["init"]["state"]["terminated"]
    assert init["exitCode"] == 7 and init["reason"] == "Error"
    main = by_name(api.last, "containerStatuses")["main"]["state"]
    assert "waiting" in main


def test_on_failure_restarts_until_success_and_counts_restarts(tmp_path: Path) -> None:
    script = "n=$(cat /w/n 2>/dev/null || echo 0); echo $((n+1)) > /w/n; [ $n -ge 2 ]"
    pod = make_pod(
        {
            "restartPolicy": "OnFailure",
            "volumes": [{"name": "w", "emptyDir": {}}],
            "containers": [sh("main", script, volumeMounts=[{"name": "w", "mountPath": "/w"}])],
        }
    )
    _, api = run_pod(pod, tmp_path)
    main = by_name(api.last, "containerStatuses")["main"]
    assert api.last["phase"] == "Succeeded"
    assert main["restartCount"] == 2
    assert main["lastState"]["terminated"]["exitCode"] == 1


def test_termination_message_file_and_log_fallback(tmp_path: Path) -> None:
    pod = make_pod(
        {
            "restartPolicy": "Never",
            "containers": [
                sh("file", "printf 'from file' > /dev/termination-log"),
                sh("logs", "echo boom; exit 2", terminationMessagePolicy="FallbackToLogsOnError"),
            ],
        }
    )
    _, api = run_pod(pod, tmp_path)
    mains = by_name(api.last, "containerStatuses")
    assert mains["file"]["state"]["terminated"]["message"] == "from file"
    assert mains["logs"]["state"]["terminated"]["message"].strip() == "boom"
    assert api.last["phase"] == "Failed"


def test_env_downward_api_config_map_and_completion_index(tmp_path: Path) -> None:
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "colour"}}},
        {"name": "BOTH", "value": "$(POD_NAME)-$(COLOUR)"},
    ]
    script = (
        "printf '%s %s %s %s %s' $POD_NAME $APP $IP $BOTH $JOB_COMPLETION_INDEX"
        " > /dev/termination-log"
    )
    pod = make_pod(
        {"restartPolicy": "Never", "containers": [sh("main", script, env=env)]},
        name="det",
        annotations={"batch.kubernetes.io/job-completion-index": "4"},
    )
    api = RecordingApi({("configmap", "cm"): {"colour": "red"}})
    _, api = run_pod(pod, tmp_path, api)
    message = by_name(api.last, "containerStatuses")["main"]["state"]["terminated"]["message"]
    assert message == "det x 127.0.0.1 det-red 4"


def test_unknown_image_waits_with_err_image_pull_until_deleted(tmp_path: Path) -> None:
    pod = make_pod(
        {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "quay.io/nobody/mystery:1"}],
        }
    )
    api = RecordingApi()
    context = podlifecycle.AgentContext(cast(kubeapi.NodeApi, api), tmp_path, "n0")
    worker = podlifecycle.PodWorker(pod, context)
    worker.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(
        "ErrImagePull" in str(s) for s in list(api.statuses)
    ):
        time.sleep(0.05)
    waiting = by_name(api.last, "containerStatuses")["main"]["state"]["waiting"]
    assert waiting["reason"] == "ErrImagePull" and "mystery" in waiting["message"]
    worker.request_delete(1)
    worker.join(5)
    assert api.last["phase"] == "Failed" and api.deleted == []


def test_deleting_a_running_pod_kills_its_process_group(tmp_path: Path) -> None:
    pod = make_pod(
        {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [sh("main", "sleep 100 & sleep 100; wait")],
        }
    )
    api = RecordingApi()
    context = podlifecycle.AgentContext(cast(kubeapi.NodeApi, api), tmp_path, "n0")
    worker = podlifecycle.PodWorker(pod, context)
    worker.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and worker.mains[0].state != "running":
        time.sleep(0.05)
    process = worker.mains[0].proc
    assert process is not None
    worker.request_delete(None)
    worker.join(20)
    assert not worker.is_alive()
    assert group_gone(process.pid, within=5.0)
    assert api.last["phase"] == "Failed"
    assert by_name(api.last, "containerStatuses")["main"]["state"]["terminated"]["exitCode"] == 143


def test_mount_over_a_prefix_of_the_checkout_keeps_the_agents_path(tmp_path: Path) -> None:
    # A mount path like '/work' must not bend PATH to the checkout's .venv (a host path).
    top = "/" + Path(sys.executable).parts[1]
    pod = make_pod(
        {
            "restartPolicy": "Never",
            "volumes": [{"name": "w", "emptyDir": {}}],
            "containers": [
                {
                    "name": "main",
                    "image": "shutterline-pipeline:dev",
                    "volumeMounts": [{"name": "w", "mountPath": top}],
                    "env": [{"name": "OUT", "value": f"{top}/out.txt"}],
                    "command": [
                        "python",
                        "-c",
                        "import os; open(os.environ['OUT'], 'w').write('ok')",
                    ],
                }
            ],
        }
    )
    worker, api = run_pod(pod, tmp_path)
    assert api.last["phase"] == "Succeeded", api.last
    assert (worker.directory / "volumes" / "w" / "out.txt").read_text() == "ok"
