"""The operator on the test bed: CRDs and RBAC installed once, the operator run as a process
with its own service account's token (so the RBAC in operator/rbac/ is what it gets), and a
namespace per test with a PromptConfig and the Secrets it names.

Used by tests/e2e/test_operator*.py (and by anyone who needs a running operator).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import signal
import sys
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.test_testbed_k8s import get, wait_for
from tests.testbed import procs
from tests.testbed.k8s import cluster, images

__all__ = [
    "OperatorProcess",
    "apply",
    "get",
    "items",
    "make_config",
    "make_visit",
    "operator_bed",
    "priority_class",
    "prompt_namespace",
    "stand_in",
    "visit_status",
    "wait_for",
    "wait_phase",
]

ROOT = images.REPO_ROOT
SYSTEM_NS = "shutterline-system"


def apply(bed: cluster.Cluster, *manifests: dict[str, Any], check: bool = True) -> Any:
    """``kubectl apply`` the manifests; the CompletedProcess (stderr names refused fields)."""
    stream = "\n---\n".join(json.dumps(m) for m in manifests)
    return bed.kubectl("apply", "-f", "-", stdin=stream, check=check)


def items(bed: cluster.Cluster, kind: str, namespace: str, selector: str = "") -> list[Any]:
    """``kubectl get kind -n namespace [-l selector]`` items."""
    args = ["get", kind, "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
    return list(json.loads(bed.kubectl(*args).stdout)["items"])


def _service_account_kubeconfig(bed: cluster.Cluster, path: Path) -> Path:
    token = bed.kubectl(
        "create", "token", "shutterline-operator", "-n", SYSTEM_NS, "--duration", "12h"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "bed",
                "cluster": {
                    "server": bed.server,
                    "certificate-authority": str(bed.plane.pki.ca.cert),
                },
            }
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "op", "context": {"cluster": "bed", "user": "operator"}}],
        "current-context": "op",
    }
    path.write_text(yaml.safe_dump(config))
    return path


class OperatorProcess:
    """``python -m shutterline_operator`` against the test bed, as its service account."""

    def __init__(self, kubeconfig: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = procs.free_port()
        self.env = {
            "KUBECONFIG": str(kubeconfig),
            "SHUTTERLINE_OPERATOR_PORT": str(self.port),
            "SHUTTERLINE_STATUS_INTERVAL_S": "0.3",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.env.pop("KUBERNETES_SERVICE_HOST", None)
        self.process = procs.ManagedProcess(
            "operator", [sys.executable, "-m", "shutterline_operator"], log, self.env, ROOT
        )

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        """Start and wait until ``/readyz`` answers 200."""
        self.process.start()
        procs.wait_process_ready(self.process, self.ready, timeout, "shutterline operator")
        return self

    def ready(self) -> bool:
        """Whether the operator's readiness endpoint answers 200."""
        try:
            url = f"http://127.0.0.1:{self.port}/readyz"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        """The Prometheus text of ``/metrics``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())

    def kill(self) -> None:
        """SIGKILL the operator (no clean-up: what a crash or an OOM kill does)."""
        proc = self.process.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        self.process.stop(timeout=15)


def _established(bed: cluster.Cluster, crd: str) -> bool:
    args = ("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=5s")
    return bed.kubectl(*args, check=False).returncode == 0


@pytest.fixture(scope="session")
def operator_bed(
    k8s_cluster: cluster.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[cluster.Cluster, OperatorProcess]]:
    """The CRDs, the operator's RBAC, and one running operator (restart it with its methods)."""
    bed = k8s_cluster
    bed.kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in ("visits.shutterline.io", "promptconfigs.shutterline.io"):
        wait_for(functools.partial(_established, bed, crd), 60, f"CRD {crd} established")
    bed.kubectl("create", "namespace", SYSTEM_NS, check=False)
    bed.kubectl("apply", "-f", str(ROOT / "operator" / "rbac" / "rbac.yaml"))
    work = tmp_path_factory.mktemp("operator")
    kubeconfig = _service_account_kubeconfig(bed, work / "kubeconfig")
    operator = OperatorProcess(kubeconfig, work / "operator.log").start()
    try:
        yield bed, operator
    finally:
        operator.stop()


def make_config(namespace: str, **spec: Any) -> dict[str, Any]:
    """A PromptConfig whose pods run ``busybox`` stand-ins unless ``spec`` says otherwise."""
    body: dict[str, Any] = {
        "instrument": "SimDECam",
        "images": {"pipeline": "busybox"},
        "backbone": {"repo": "s3://backbone/repo", "credentialsSecret": "backbone"},
        "apdb": {"secret": {"name": "apdb"}},
        "telemetry": {"enabled": False},
        "retries": {"backoffLimitPerIndex": 1},
        "ttlSecondsAfterFinished": 600,
        "scratch": {"sizeLimit": "1Gi"},
    }
    body.update(spec)
    return {
        "apiVersion": "shutterline.io/v1alpha1",
        "kind": "PromptConfig",
        "metadata": {"name": "simdecam", "namespace": namespace},
        "spec": body,
    }


def stand_in(pipeline: str, precache: str = "sleep 0.2") -> dict[str, Any]:
    """``debug.commands`` running shell stand-ins for the precache and pipeline containers."""
    return {"commands": {"precache": ["sh", "-c", precache], "pipeline": ["sh", "-c", pipeline]}}


def priority_class(name: str, value: int) -> dict[str, Any]:
    """A PriorityClass as the chart makes them: one below 0 never preempts (analysis pods)."""
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        "preemptionPolicy": "Never" if value < 0 else "PreemptLowerPriority",
    }


def make_visit(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A Visit whose shutter opens now (so its deadline is ``deadlineSeconds`` from now)."""
    start = dt.datetime.now(dt.UTC)
    body: dict[str, Any] = {
        "instrument": "SimDECam",
        "visitId": zlib.crc32(f"{namespace}/{name}".encode()),
        "detectors": [1],
        "band": "r",
        "boresight": {"ra": 150.1, "dec": -2.3},
        "observationStart": start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "exposureTime": 1.0,
        "rawUri": "s3://backbone/incoming/{visit}/raw_{visit}_{detector:02d}.fits",
        "deadlineSeconds": 120,
    }
    body.update(spec)
    return {
        "apiVersion": "shutterline.io/v1alpha1",
        "kind": "Visit",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


@pytest.fixture
def prompt_namespace(operator_bed: tuple[cluster.Cluster, OperatorProcess]) -> Iterator[str]:
    """A fresh namespace with the Secrets a PromptConfig names (no PromptConfig yet)."""
    bed, _ = operator_bed
    namespace = f"prompt-{uuid.uuid4().hex[:6]}"
    bed.kubectl("create", "namespace", namespace)
    bed.kubectl(
        "create",
        "secret",
        "generic",
        "backbone",
        "-n",
        namespace,
        "--from-literal=AWS_ACCESS_KEY_ID=x",
        "--from-literal=AWS_SECRET_ACCESS_KEY=y",
    )
    bed.kubectl(
        "create",
        "secret",
        "generic",
        "apdb",
        "-n",
        namespace,
        "--from-literal=url=postgresql://apdb.invalid/apdb",
    )
    yield namespace
    bed.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def visit_status(bed: cluster.Cluster, name: str, namespace: str) -> dict[str, Any]:
    """The Visit's status ({} before the operator wrote one)."""
    return dict((get(bed, "visit", name, namespace) or {}).get("status") or {})


def wait_phase(
    bed: cluster.Cluster,
    name: str,
    namespace: str,
    phases: tuple[str, ...],
    timeout: float,
    seen: list[str] | None = None,
) -> dict[str, Any]:
    """Wait until the Visit is in one of ``phases``; record every phase seen in ``seen``."""

    def reached() -> dict[str, Any] | None:
        status = visit_status(bed, name, namespace)
        phase = status.get("phase")
        if seen is not None and phase and (not seen or seen[-1] != phase):
            seen.append(phase)
        return status if phase in phases else None

    return dict(wait_for(reached, timeout, f"Visit {namespace}/{name} in {phases}"))
