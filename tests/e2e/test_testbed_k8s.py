"""The Kubernetes test bed does what the operator and the chart rely on, for real.

A CRD and its objects are served; a Job with an init container, a native sidecar and a main
container runs through the node agent and completes, with the sidecar stopped afterwards; an
Indexed Job's pods see their completion index; the garbage collector removes children of a
deleted owner; RBAC forbids a service account that has no role.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.testbed.k8s import cluster, tools

# No per-test time-out: the first use may build the binaries (tens of minutes); every wait
# below is bounded by its own time-out instead.
pytestmark = pytest.mark.testbed

GROUP = "testbed.shutterline.io"
ECHO_INDEX = "echo -n $JOB_COMPLETION_INDEX > /dev/termination-log"
PIPELINE_IMAGE = "registry.example/shutterline/shutterline-pipeline:dev"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def apply(bed: cluster.Cluster, *manifests: dict[str, Any]) -> None:
    """``kubectl apply`` the manifests."""
    stream = "\n---\n".join(json.dumps(m) for m in manifests)
    bed.kubectl("apply", "-f", "-", stdin=stream)


def get(bed: cluster.Cluster, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    """The object as JSON, or None if it does not exist."""
    result = bed.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    return dict(json.loads(result.stdout))


def pods_of(bed: cluster.Cluster, job: str, namespace: str) -> list[dict[str, Any]]:
    """The pods of Job ``job``."""
    out = bed.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={job}", "-o", "json")
    return list(json.loads(out.stdout)["items"])


def job_condition(bed: cluster.Cluster, job: str, namespace: str) -> str | None:
    """``Complete`` or ``Failed`` once the Job has finished, else None."""
    status = (get(bed, "job", job, namespace) or {}).get("status", {})
    for condition in status.get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return None


def statuses(pod: dict[str, Any], field: str) -> dict[str, dict[str, Any]]:
    """Container statuses of ``pod`` by container name (field: containerStatuses or init...)."""
    return {s["name"]: s for s in pod["status"].get(field) or []}


@pytest.fixture
def namespace(k8s_cluster: cluster.Cluster) -> Iterator[str]:
    """A fresh namespace for one test (deleted afterwards, without waiting)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    k8s_cluster.kubectl("create", "namespace", name)
    yield name
    k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def widget_crd(k8s_cluster: cluster.Cluster) -> str:
    """A namespaced CRD ``widgets.testbed.shutterline.io`` with a validated schema."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "shortNames": ["wdg"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                },
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    apply(k8s_cluster, crd)
    k8s_cluster.kubectl(
        "wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=30s"
    )
    return f"widgets.{GROUP}"


def widget(name: str, namespace: str, size: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"size": size},
    }


def test_api_server_refuses_anonymous_clients(k8s_cluster: cluster.Cluster) -> None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{k8s_cluster.server}/api/v1/namespaces", context=context)
    refused.value.close()
    assert refused.value.code == 401


def test_crd_serves_validated_custom_objects(
    k8s_cluster: cluster.Cluster, widget_crd: str, namespace: str
) -> None:
    from kubernetes import client

    apply(k8s_cluster, widget("small", namespace, 3))
    with k8s_cluster.api_client() as api_client:
        api = client.CustomObjectsApi(api_client)
        stored: Any = api.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "small")
    assert stored["spec"] == {"size": 3}
    listed = k8s_cluster.kubectl("get", "wdg", "-n", namespace, "-o", "name").stdout.split()
    assert listed == [f"widget.{GROUP}/small"]
    invalid = k8s_cluster.kubectl(
        "apply", "-f", "-", check=False, stdin=json.dumps(widget("bad", namespace, 0))
    )
    assert invalid.returncode != 0 and "spec.size" in invalid.stderr


def _pipeline_job(name: str, namespace: str) -> dict[str, Any]:
    """Init container writes a file, a sidecar runs until stopped, the main one checks both."""
    work = [{"name": "work", "mountPath": "/work"}]
    main_code = (
        "import os, pathlib\n"
        "ready = pathlib.Path('/work/ready').read_text().strip()\n"
        "assert pathlib.Path('/work/sidecar-up').exists()\n"
        "pathlib.Path('/dev/termination-log').write_text(f'{ready} {os.environ[\"POD\"]}')\n"
        "print('pipeline done')\n"
    )
    sidecar = (
        "trap 'echo stopped > /work/sidecar-stopped; exit 0' TERM; "
        "touch /work/sidecar-up; while true; do sleep 0.1; done"
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "volumes": [{"name": "work", "emptyDir": {}}],
                    "initContainers": [
                        {
                            "name": "precache",
                            "image": "busybox:1.36",
                            "volumeMounts": work,
                            "command": ["sh", "-c", "echo prepared > /work/ready"],
                        },
                        {
                            "name": "relay",
                            "image": "busybox:1.36",
                            "restartPolicy": "Always",
                            "volumeMounts": work,
                            "command": ["sh", "-c", sidecar],
                        },
                    ],
                    "containers": [
                        {
                            "name": "pipeline",
                            "image": PIPELINE_IMAGE,
                            "volumeMounts": work,
                            "command": ["python", "-c", main_code],
                            "env": [
                                {
                                    "name": "POD",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                        },
                    ],
                }
            },
        },
    }


def _pid(container_status: dict[str, Any]) -> int:
    return int(container_status["containerID"].removeprefix("testbed://"))


def _gone(pid: int, within: float = 3.0) -> bool:
    """Whether process ``pid`` has ended (within ``within`` s: signals are asynchronous)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_job_runs_init_sidecar_and_main_then_stops_sidecar(
    k8s_cluster: cluster.Cluster, namespace: str
) -> None:
    apply(k8s_cluster, _pipeline_job("visit", namespace))
    outcome = wait_for(lambda: job_condition(k8s_cluster, "visit", namespace), 60, "Job end")
    (pod,) = pods_of(k8s_cluster, "visit", namespace)
    assert outcome == "Complete", json.dumps(pod["status"], indent=1)
    assert pod["status"]["phase"] == "Succeeded"
    inits = statuses(pod, "initContainerStatuses")
    assert inits["precache"]["state"]["terminated"]["reason"] == "Completed"
    relay = inits["relay"]["state"]["terminated"]
    main = statuses(pod, "containerStatuses")["pipeline"]["state"]["terminated"]
    assert main["exitCode"] == 0
    assert main["message"] == f"prepared {pod['metadata']['name']}"
    # The sidecar ran beside the main container and was stopped (SIGTERM) only after it.
    assert relay["startedAt"] <= main["startedAt"] and relay["finishedAt"] >= main["finishedAt"]
    assert relay["exitCode"] == 0
    assert _gone(_pid(inits["relay"]))
    work = k8s_cluster.pod_dir(pod) / "volumes" / "work"
    assert (work / "sidecar-stopped").read_text().strip() == "stopped"
    assert "pipeline done" in k8s_cluster.container_log(pod, "pipeline")
    logs = k8s_cluster.kubectl("logs", pod["metadata"]["name"], "-c", "pipeline", "-n", namespace)
    assert logs.stdout == "pipeline done\n"


def test_failed_container_reports_exit_code_and_log_tail(
    k8s_cluster: cluster.Cluster, namespace: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "command": ["sh", "-c", "echo first try failed; exit 3"],
                        }
                    ],
                }
            },
        },
    }
    apply(k8s_cluster, job)
    wait_for(lambda: job_condition(k8s_cluster, "broken", namespace), 60, "Job end")
    (pod,) = pods_of(k8s_cluster, "broken", namespace)
    main = statuses(pod, "containerStatuses")["main"]
    last = main["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert last["exitCode"] == 3 and last["reason"] == "Error"
    assert "first try failed" in last["message"]


def test_indexed_job_pods_see_their_completion_index(
    k8s_cluster: cluster.Cluster, namespace: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "indexed", "namespace": namespace},
        "spec": {
            "completions": 3,
            "parallelism": 3,
            "completionMode": "Indexed",
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "detector",
                            "image": "busybox",
                            "command": ["sh", "-c", ECHO_INDEX],
                        }
                    ],
                }
            },
        },
    }
    apply(k8s_cluster, job)
    outcome = wait_for(lambda: job_condition(k8s_cluster, "indexed", namespace), 60, "Job end")
    assert outcome == "Complete"

    def messages() -> dict[str, str] | None:
        # A pod's container status can reach the API server a moment after the Job's condition
        # (seen once in CI: Complete, one container not yet `terminated`), so poll for them.
        seen = {}
        for pod in pods_of(k8s_cluster, "indexed", namespace):
            index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            state = statuses(pod, "containerStatuses").get("detector", {}).get("state", {})
            if "terminated" not in state:
                return None
            seen[index] = state["terminated"].get("message")
        return seen

    seen = wait_for(messages, 30, "every pod's termination message")
    assert seen == {"0": "0", "1": "1", "2": "2"}


def test_deleting_a_job_removes_its_pods_and_processes(
    k8s_cluster: cluster.Cluster, namespace: str
) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "sleeper", "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sleep", "300"]}
                    ],
                }
            }
        },
    }
    apply(k8s_cluster, job)

    def running() -> dict[str, Any] | None:
        pods = pods_of(k8s_cluster, "sleeper", namespace)
        state = statuses(pods[0], "containerStatuses") if pods else {}
        return pods[0] if "running" in state.get("main", {}).get("state", {}) else None

    pod = wait_for(running, 60, "the sleeper pod to run")
    pid = _pid(statuses(pod, "containerStatuses")["main"])
    k8s_cluster.kubectl("delete", "job", "sleeper", "-n", namespace, "--cascade=background")
    wait_for(
        lambda: not pods_of(k8s_cluster, "sleeper", namespace),
        60,
        "the garbage collector and the agent to remove the Job's pod",
    )
    assert _gone(pid)


def _token_kubeconfig(bed: cluster.Cluster, token: str, path: Path) -> Path:
    config = yaml.safe_load(bed.kubeconfig.read_text())
    config["users"] = [{"name": "sa", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "sa"
    path.write_text(yaml.safe_dump(config))
    return path


def test_rbac_forbids_a_service_account_without_a_role(
    k8s_cluster: cluster.Cluster, namespace: str, tmp_path: Path
) -> None:
    k8s_cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    token = k8s_cluster.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    reader = _token_kubeconfig(k8s_cluster, token, tmp_path / "reader.kubeconfig")

    def as_reader(*args: str) -> subprocess.CompletedProcess[str]:
        return tools.run_kubectl(reader, *args, "-n", namespace, check=False)

    denied = as_reader("get", "configmaps")
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    k8s_cluster.kubectl(
        "create", "role", "read-cm", "--verb=get,list", "--resource=configmaps", "-n", namespace
    )
    k8s_cluster.kubectl(
        "create",
        "rolebinding",
        "reader-read-cm",
        "--role=read-cm",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    wait_for(lambda: as_reader("get", "configmaps").returncode == 0, 10, "the role binding")
    still_denied = as_reader("get", "secrets")
    assert still_denied.returncode != 0 and "Forbidden" in still_denied.stderr


WHOAMI = """
import json, os, ssl, urllib.request, yaml
config = yaml.safe_load(open(os.environ["KUBECONFIG"]))
cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
token = open(user["tokenFile"]).read()
context = ssl.create_default_context(cafile=cluster["certificate-authority"])
body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
request = urllib.request.Request(
    cluster["server"] + "/apis/authentication.k8s.io/v1/selfsubjectreviews", body.encode(),
    {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
with urllib.request.urlopen(request, context=context) as answer:
    name = json.load(answer)["status"]["userInfo"]["username"]
open("/dev/termination-log", "w").write(name)
"""


def test_pods_reach_the_api_server_as_their_service_account(
    k8s_cluster: cluster.Cluster, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "whoami", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "python:3.11", "command": ["python", "-c", WHOAMI]}
            ],
        },
    }
    wait_for(
        lambda: get(k8s_cluster, "serviceaccount", "default", namespace),
        30,
        "the namespace's default service account",
    )
    apply(k8s_cluster, pod)

    def finished() -> dict[str, Any] | None:
        found = get(k8s_cluster, "pod", "whoami", namespace) or {}
        phase = found.get("status", {}).get("phase")
        return found if phase in ("Succeeded", "Failed") else None

    done = wait_for(finished, 60, "the whoami pod to finish")
    state = statuses(done, "containerStatuses")["main"]["state"]["terminated"]
    assert state["message"] == f"system:serviceaccount:{namespace}:default", state


# Last in the file: the garbage collector picks up a new CRD only at its next discovery sync
# (every 30 s), so the later this runs after the CRD was created, the shorter the wait.
def test_garbage_collector_removes_children_of_deleted_owner(
    k8s_cluster: cluster.Cluster, widget_crd: str, namespace: str
) -> None:
    apply(k8s_cluster, widget("owner", namespace, 1))
    owner = get(k8s_cluster, "widget", "owner", namespace)
    assert owner is not None
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned",
            "namespace": namespace,
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/v1",
                    "kind": "Widget",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "data": {"k": "v"},
    }
    apply(k8s_cluster, child)
    k8s_cluster.kubectl("delete", "widget", "owner", "-n", namespace, "--cascade=background")
    wait_for(
        lambda: get(k8s_cluster, "configmap", "owned", namespace) is None,
        60,
        "the garbage collector to delete the owned ConfigMap",
    )
