"""A whole Kubernetes test bed: the control plane plus node agents, started and stopped as one.

``start(state_dir)`` builds or fetches the pinned binaries (cached), starts the control plane
and one node agent per requested node, waits until the nodes are Ready and schedulable, and
returns a `Cluster` with helpers for tests (API client, kubectl, container logs).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.testbed import builds, procs
from tests.testbed.k8s import (
    build,
    controlplane,
    images,
    kubeapi,
    podlifecycle,
    provisioner,
    tools,
)

__all__ = ["Cluster", "node_ready", "start", "start_node_agent", "start_provisioner"]


@dataclass
class Cluster:
    """A running control plane and its node agents."""

    plane: controlplane.ControlPlane
    binaries: build.Binaries
    state_dir: Path
    node_names: list[str]
    agents: list[procs.ManagedProcess] = field(default_factory=list)
    provisioner: procs.ManagedProcess | None = None

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (user ``shutterline-admin`` in ``system:masters``)."""
        return self.plane.kubeconfig

    @property
    def server(self) -> str:
        """The API server's URL, ``https://127.0.0.1:PORT``."""
        return self.plane.server

    def api_client(self) -> Any:
        """A new ``kubernetes.client.ApiClient`` authenticated as the admin."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the cached kubectl with the admin kubeconfig (raises on failure if ``check``)."""
        return tools.run_kubectl(self.kubeconfig, *args, check=check, stdin=stdin, timeout=timeout)

    def pod_dir(self, pod: dict[str, Any], node: str | None = None) -> Path:
        """The agent's directory of ``pod`` (a pod dict with metadata name/namespace/uid)."""
        return podlifecycle.pod_dir(self.state_dir / "nodes" / (node or self.node_names[0]), pod)

    def container_log(self, pod: dict[str, Any], container: str, restart: int = 0) -> str:
        """Output of ``container`` of ``pod`` (its ``restart``-th run); '' if none yet."""
        for node in self.node_names:
            path = self.pod_dir(pod, node) / "containers" / container / f"{restart}.log"
            if path.exists():
                return path.read_text(errors="replace")
        return ""

    def check_alive(self) -> None:
        """Raise `procs.ComponentError` naming the first component that has exited."""
        self.plane.check_alive()
        for process in [*self.agents, *([self.provisioner] if self.provisioner else [])]:
            process.check_alive()

    def stop(self) -> None:
        """Stop the node agents (and their pods' processes), the provisioner, the plane."""
        for agent in self.agents:
            agent.stop(timeout=30)
        if self.provisioner is not None:
            self.provisioner.stop()
        self.plane.stop()


def node_ready(api: kubeapi.NodeApi, name: str) -> bool:
    """Whether Node ``name`` is Ready and carries no taint (so pods are scheduled on it)."""
    node = api.get_node(name) or {}
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return ready and not node.get("spec", {}).get("taints")


def start_node_agent(
    plane: controlplane.ControlPlane,
    state_dir: Path,
    name: str,
    timeout: float = 60.0,
    capacity: dict[str, str] | None = None,
) -> procs.ManagedProcess:
    """Start a node agent for Node ``name`` and wait until the node is Ready and untainted.

    ``capacity`` may set ``cpu``, ``memory`` and ``pods`` (defaults: 16, 64Gi, 250).
    """
    serving = plane.pki.node_serving(name)
    argv = [
        sys.executable,
        "-m",
        "tests.testbed.k8s.nodeagent",
        "--kubeconfig",
        str(plane.node_kubeconfig(name)),
        "--node-name",
        name,
        "--state-dir",
        str(state_dir / "nodes" / name),
        "--serving-cert",
        str(serving.cert),
        "--serving-key",
        str(serving.key),
        "--client-ca",
        str(plane.pki.ca.cert),
    ]
    for resource, amount in (capacity or {}).items():
        argv += [f"--{resource}", amount]
    log = state_dir / "logs" / f"node-agent-{name}.log"
    agent = procs.ManagedProcess(f"node agent {name}", argv, log, cwd=images.REPO_ROOT).start()
    admin = kubeapi.NodeApi(plane.kubeconfig)
    procs.wait_process_ready(
        agent,
        lambda: node_ready(admin, name),
        timeout,
        f"node agent {name} (Node Ready and untainted)",
    )
    return agent


def start_provisioner(
    plane: controlplane.ControlPlane, state_dir: Path, timeout: float = 60.0
) -> procs.ManagedProcess:
    """Start the local-path provisioner (`provisioner`); wait for its StorageClass."""
    argv = [sys.executable, "-m", "tests.testbed.k8s.provisioner"]
    argv += ["--kubeconfig", str(plane.kubeconfig), "--root", str(state_dir / "volumes")]
    log = state_dir / "logs" / "provisioner.log"
    process = procs.ManagedProcess("provisioner", argv, log, cwd=images.REPO_ROOT).start()
    admin = kubeapi.NodeApi(plane.kubeconfig)
    path = f"/apis/storage.k8s.io/v1/storageclasses/{provisioner.STORAGE_CLASS}"

    def ready() -> bool:
        admin.request("GET", path)
        return True

    try:
        procs.wait_process_ready(process, ready, timeout, "provisioner (StorageClass)")
    finally:
        admin.close()
    return process


def start(
    state_dir: Path,
    nodes: int = 1,
    timeout: float = 90.0,
    capacity: dict[str, str] | None = None,
) -> Cluster:
    """Build what is missing, start the control plane and ``nodes`` node agents.

    ``capacity`` is each node's advertised ``cpu``/``memory``/``pods`` (see the agent).
    """
    binaries = build.ensure_all()
    started = time.monotonic()
    plane = controlplane.start(state_dir, binaries, timeout)
    cluster = Cluster(plane, binaries, state_dir, [f"testbed-node-{i}" for i in range(nodes)])
    try:
        cluster.provisioner = start_provisioner(plane, state_dir, timeout)
        for name in cluster.node_names:
            cluster.agents.append(start_node_agent(plane, state_dir, name, timeout, capacity))
    except BaseException:
        cluster.stop()
        raise
    builds.say(
        f"Kubernetes test bed up in {time.monotonic() - started:.1f} s "
        f"({nodes} node(s), kubeconfig {plane.kubeconfig})"
    )
    return cluster
