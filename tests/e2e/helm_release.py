"""Installing the chart on the test bed: namespaces, values, helm, Kafka tools, waits.

Shared by the ``test_helm*.py`` end-to-end tests. Values start from `TESTBED_VALUES` (three
small Kafka nodes that fit one node agent) and each test adds what it checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.test_testbed_k8s import wait_for  # one poll-until helper for the e2e tests
from tests.testbed.k8s import cluster, images, kafkaimage

__all__ = [
    "CHART",
    "TESTBED_VALUES",
    "Release",
    "create_namespace",
    "kafka_tool",
    "merge",
    "wait_for",
]

CHART = images.REPO_ROOT / "charts" / "shutterline"
PSS_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
# Three Kafka nodes on one agent: soft anti-affinity, small heaps and volumes.
TESTBED_VALUES: dict[str, Any] = {
    "operator": {"enabled": False},
    "schemaRegistry": {"enabled": False, "url": "http://127.0.0.1:1/apis/ccompat/v7"},
    "namespaces": {"create": False},
    "instruments": {},
    "kafka": {
        "heapOpts": "-Xms64m -Xmx384m",
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "storage": {"size": "2Gi"},
        "antiAffinity": {"mode": "soft"},
        "terminationGracePeriodSeconds": 30,
        "topics": {"alerts": {"partitions": 3}, "metrics": {"partitions": 1}},
    },
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, recursively (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def create_namespace(bed: cluster.Cluster, prefix: str) -> str:
    """A fresh namespace labelled for the restricted Pod Security Standard."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": PSS_LABELS},
    }
    bed.kubectl("apply", "-f", "-", stdin=json.dumps(body))
    return name


@dataclass
class Release:
    """One helm release of the chart on the test bed."""

    bed: cluster.Cluster
    name: str
    namespace: str
    workdir: Path
    workers: str

    def values(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """`TESTBED_VALUES` with this release's workers namespace, plus ``extra``."""
        own = merge(TESTBED_VALUES, {"namespaces": {"workers": self.workers}})
        return merge(own, extra or {})

    def helm(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run helm against the test bed; raise with its output on failure."""
        env = dict(
            os.environ,
            KUBECONFIG=str(self.bed.kubeconfig),
            HELM_CACHE_HOME=str(self.workdir / "helm-cache"),
            HELM_CONFIG_HOME=str(self.workdir / "helm-config"),
            HELM_DATA_HOME=str(self.workdir / "helm-data"),
        )
        argv = [str(self.bed.binaries.helm), *args, "--namespace", self.namespace]
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def _values_file(self, values: dict[str, Any]) -> Path:
        path = self.workdir / f"values-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    def install(self, values: dict[str, Any], timeout: str = "8m") -> None:
        """``helm install --wait`` (the topic Job hook runs before it returns)."""
        values_file = self._values_file(values)
        self.helm(
            "install", self.name, str(CHART), "-f", str(values_file), "--wait", "--timeout", timeout
        )

    def upgrade(self, values: dict[str, Any], timeout: str = "8m") -> None:
        """``helm upgrade --wait`` with the whole set of ``values``."""
        values_file = self._values_file(values)
        self.helm(
            "upgrade", self.name, str(CHART), "-f", str(values_file), "--wait", "--timeout", timeout
        )

    def get(self, kind: str, name: str) -> dict[str, Any]:
        """An object of the release namespace as JSON."""
        out = self.bed.kubectl("get", kind, name, "-n", self.namespace, "-o", "json")
        return dict(json.loads(out.stdout))

    def pods(self, selector: str) -> list[dict[str, Any]]:
        """Pods of the release namespace matching a label selector."""
        out = self.bed.kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o", "json")
        return list(json.loads(out.stdout)["items"])


def kafka_tool(workdir: Path, script: str, *args: str, timeout: float = 120) -> str:
    """Run one of the Kafka image's scripts (``kafka-topics.sh`` ...) on the host; its stdout."""
    root = kafkaimage.files(workdir / "kafka-tools")["/opt/kafka"]
    env = dict(os.environ, KAFKA_HEAP_OPTS="-Xmx128m")
    result = subprocess.run(
        [str(root / "bin" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
        )
    return result.stdout
