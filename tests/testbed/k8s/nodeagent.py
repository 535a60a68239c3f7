"""The test bed's node agent: a Node whose pods run as local processes (a tiny kubelet).

Run as ``python -m tests.testbed.k8s.nodeagent --kubeconfig K --node-name N --state-dir D``
with a kubeconfig of user ``system:node:N`` (group ``system:nodes``). It registers the Node
(Ready, with the given capacity), renews its Lease and heartbeat, watches the pods bound to it
and hands each to a `podlifecycle.PodWorker`. When a pod is deleted its processes are stopped
and the deletion is finished with grace period 0. Each pod gets its own loopback address and
pods of headless Services get host names (`podnet`). On SIGTERM the agent stops every pod's
processes (leaving the pods in the API), removes its host names and exits. Per-pod files are under
``<state dir>/pods/<namespace>_<name>_<uid>/`` (``containers/<name>/<restartCount>.log``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from tests.testbed.k8s import build, containers, kubeapi, logserver, podlifecycle, podnet

__all__ = ["NodeAgent", "main", "node_body", "node_status"]

log = logging.getLogger("testbed.nodeagent")
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
_TERMINAL = ("Succeeded", "Failed")


def node_body(name: str) -> dict[str, Any]:
    """The Node object the agent registers (labels a kubelet would set)."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "testbed",
        "shutterline.io/testbed-agent": "true",
    }
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def node_status(name: str, capacity: dict[str, str], since: str, port: int = 0) -> dict[str, Any]:
    """The Node status: Ready (since ``since``), no pressure, loopback address, capacity."""
    stamp = kubeapi.now()

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": since,
        }

    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
            condition("Ready", "True", "KubeletReady", "test-bed node agent is ready"),
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": name},
        ],
        "nodeInfo": {
            "machineID": name,
            "systemUUID": name,
            "bootID": name,
            "kernelVersion": "",
            "osImage": "shutterline test bed",
            "containerRuntimeVersion": "testbed://1",
            "kubeletVersion": build.KUBERNETES_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


class NodeAgent:
    """Registers one Node and keeps the pods bound to it running."""

    def __init__(
        self, api: kubeapi.NodeApi, node_name: str, state_dir: Path, capacity: dict[str, str]
    ) -> None:
        self.api, self.node_name, self.capacity = api, node_name, capacity
        self.network = podnet.PodNetwork(node_name)
        self.context = podlifecycle.AgentContext(api, state_dir, node_name, network=self.network)
        self.workers: dict[str, podlifecycle.PodWorker] = {}
        self.finalized: set[str] = set()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.since = kubeapi.now()
        self.port = 0

    # --- the node ---------------------------------------------------------------------
    def register(self) -> None:
        """Create the Node if needed and mark it Ready."""
        if self.api.get_node(self.node_name) is None:
            self.api.create_node(node_body(self.node_name))
        self.api.patch_node_status(
            self.node_name, node_status(self.node_name, self.capacity, self.since, self.port)
        )
        self.api.renew_lease(self.node_name, LEASE_SECONDS)
        log.info("node %s registered with capacity %s", self.node_name, self.capacity)

    def heartbeat(self) -> None:
        """Renew the Lease and the Ready condition until the agent stops."""
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.api.renew_lease(self.node_name, LEASE_SECONDS)
                self.api.patch_node_status(
                    self.node_name,
                    node_status(self.node_name, self.capacity, self.since, self.port),
                )
            except Exception as error:
                log.warning("heartbeat failed: %s", error)

    # --- pods -------------------------------------------------------------------------
    def sync(self, pod: dict[str, Any]) -> None:
        """Bring one pod event to effect: start a worker, stop one, or finish a deletion."""
        meta = pod["metadata"]
        uid = str(meta["uid"])
        with self.lock:
            worker = self.workers.get(uid)
            if meta.get("deletionTimestamp"):
                if worker is not None and worker.is_alive():
                    worker.request_delete(meta.get("deletionGracePeriodSeconds"))
                elif uid not in self.finalized:
                    self._finalize(pod)
                return
            phase = (pod.get("status") or {}).get("phase")
            if worker is None and phase not in _TERMINAL:
                worker = podlifecycle.PodWorker(pod, self.context)
                worker.on_done = self._worker_done
                self.workers[uid] = worker
                log.info("pod %s/%s: starting", meta["namespace"], meta["name"])
                worker.start()

    def _finalize(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.finalized.add(str(meta["uid"]))
        self.api.delete_pod(meta["namespace"], meta["name"], str(meta["uid"]))
        log.info("pod %s/%s: deletion finished", meta["namespace"], meta["name"])

    def _worker_done(self, worker: podlifecycle.PodWorker) -> None:
        log.info("pod %s: %s", worker.pod["metadata"]["name"], worker.phase)
        if worker.deleting.is_set() and worker.remove_from_api:
            with self.lock:
                self._finalize(worker.pod)

    def find(self, namespace: str, name: str, container: str) -> containers.ContainerRun | None:
        """The record of ``container`` of pod ``namespace/name`` (newest pod of that name)."""
        with self.lock:
            workers = list(self.workers.values())
        for worker in reversed(workers):
            meta = worker.pod["metadata"]
            if (meta["namespace"], meta["name"]) == (namespace, name):
                for run in [*worker.inits, *worker.mains]:
                    if run.name == container:
                        return run
        return None

    def forget(self, pod: dict[str, Any]) -> None:
        """The pod is gone from the API: stop anything left of it and drop its worker."""
        uid = str(pod["metadata"]["uid"])
        with self.lock:
            worker = self.workers.pop(uid, None)
            self.finalized.discard(uid)
        if worker is not None and worker.is_alive():
            worker.request_delete(0, remove_from_api=False)

    def watch(self) -> None:
        """List then watch the node's pods until the agent stops (re-listing after errors)."""
        while not self.stopping.is_set():
            try:
                pods, version = self.api.list_pods(self.node_name)
                for pod in pods:
                    self.sync(pod)
                while not self.stopping.is_set():
                    version = self._watch_once(version)
            except Exception as error:
                if not self.stopping.is_set():
                    log.warning("pod watch failed (%s); listing again", error)
                    time.sleep(1)

    def _watch_once(self, version: str) -> str:
        for kind, pod in self.api.watch_pods(self.node_name, version):
            version = str(pod["metadata"].get("resourceVersion", version))
            if kind == "DELETED":
                self.forget(pod)
            elif kind in ("ADDED", "MODIFIED"):
                self.sync(pod)
            if self.stopping.is_set():
                break
        return version

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop every pod's processes (the pods stay in the API) and stop watching."""
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.request_delete(min(worker.grace, grace), remove_from_api=False)
        for worker in workers:
            worker.join(grace + 5)
        self.network.close()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--cpu", default="16", help="advertised CPU capacity")
    parser.add_argument("--memory", default="64Gi", help="advertised memory capacity")
    parser.add_argument("--pods", default="250", help="advertised pod capacity")
    parser.add_argument("--serving-cert", type=Path, help="TLS pair of the log endpoint")
    parser.add_argument("--serving-key", type=Path)
    parser.add_argument("--client-ca", type=Path, help="CA of the API server's client cert")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the agent until SIGTERM or SIGINT."""
    args = _arguments(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(threadName)s %(message)s",
    )
    capacity = {
        "cpu": args.cpu,
        "memory": args.memory,
        "pods": args.pods,
        "ephemeral-storage": "100Gi",
    }
    agent = NodeAgent(kubeapi.NodeApi(args.kubeconfig), args.node_name, args.state_dir, capacity)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping pods and exiting", signum)
        threading.Thread(target=agent.shutdown, daemon=True).start()

    if args.serving_cert and args.serving_key and args.client_ca:
        server = logserver.serve(args.serving_cert, args.serving_key, args.client_ca, agent.find)
        agent.port = int(server.server_address[1])
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.register()
    threading.Thread(target=agent.heartbeat, name="heartbeat", daemon=True).start()
    watcher = threading.Thread(target=agent.watch, name="watch", daemon=True)
    watcher.start()
    while not agent.stopping.is_set():
        agent.stopping.wait(0.5)
    for worker in list(agent.workers.values()):
        worker.join(15)
    agent.network.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
