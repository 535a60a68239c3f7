"""The Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager, scheduler.

``start(state_dir, binaries)`` creates the PKI, starts the four processes on free ports with
their logs in ``state_dir/logs``, waits until each is healthy and returns a `ControlPlane`.
Clients authenticate with certificates (no anonymous access); the API server authorizes with
``Node,RBAC`` and admits with ``NodeRestriction``, so RBAC rules are exercised for real.
"""

from __future__ import annotations

import ssl
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.testbed import builds, procs
from tests.testbed.k8s import build, certs, kubeapi, kubeconfig

__all__ = ["SERVICE_CLUSTER_IP_RANGE", "ControlPlane", "start"]

# Service IPs are API objects only: nothing routes them, no traffic ever goes there.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class ControlPlane:
    """A running control plane: where it listens, how to authenticate, its processes."""

    state_dir: Path
    server: str
    pki: certs.Pki
    kubeconfig: Path
    processes: list[procs.ManagedProcess] = field(default_factory=list)

    def node_kubeconfig(self, node_name: str) -> Path:
        """A kubeconfig for node ``node_name`` (user ``system:node:<name>``)."""
        path = self.state_dir / "kubeconfigs" / f"node-{node_name}.kubeconfig"
        if not path.exists():
            pair = self.pki.node(node_name)
            kubeconfig.write_kubeconfig(
                path, self.server, self.pki.ca.cert, pair, f"system:node:{node_name}"
            )
        return path

    def check_alive(self) -> None:
        """Raise `procs.ComponentError` naming the first component that has exited."""
        for process in self.processes:
            process.check_alive()

    def stop(self) -> None:
        """Stop the components, most dependent first."""
        for process in reversed(self.processes):
            process.stop()


def _ssl_context(pki: certs.Pki | None) -> ssl.SSLContext:
    """An admin-authenticated context for the API server, or an unverified one for probes."""
    if pki is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    return context


def _get_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        return bool(response.status == 200)


def _start(name: str, argv: list[str], state_dir: Path) -> procs.ManagedProcess:
    return procs.ManagedProcess(name, argv, state_dir / "logs" / f"{name}.log").start()


def _start_etcd(binary: Path, state_dir: Path, timeout: float) -> tuple[procs.ManagedProcess, str]:
    client, peer = procs.free_port(), procs.free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    argv = [
        str(binary),
        "--name",
        "testbed",
        "--data-dir",
        str(state_dir / "etcd"),
        "--listen-client-urls",
        client_url,
        "--advertise-client-urls",
        client_url,
        "--listen-peer-urls",
        peer_url,
        "--initial-advertise-peer-urls",
        peer_url,
        "--initial-cluster",
        f"testbed={peer_url}",
        # A throw-away store: durability is not worth the fsync latency here.
        "--unsafe-no-fsync",
        "--log-level",
        "warn",
    ]
    process = _start("etcd", argv, state_dir)
    procs.wait_process_ready(process, lambda: _get_ok(f"{client_url}/health"), timeout, "etcd")
    return process, client_url


def _apiserver_argv(binary: Path, pki: certs.Pki, etcd_url: str, port: int) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--anonymous-auth=false",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        f"--service-account-issuer={_ISSUER}",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        # Endpoints may not hold loopback addresses, so the 'kubernetes' Service has none.
        "--endpoint-reconciler-type=none",
        f"--kubelet-client-certificate={pki.kubelet_client.cert}",
        f"--kubelet-client-key={pki.kubelet_client.key}",
        f"--kubelet-certificate-authority={pki.ca.cert}",
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true",
        "--profiling=false",
    ]


def _start_apiserver(
    binary: Path, pki: certs.Pki, etcd_url: str, state_dir: Path, timeout: float
) -> tuple[procs.ManagedProcess, str]:
    port = procs.free_port()
    server = f"https://127.0.0.1:{port}"
    process = _start("kube-apiserver", _apiserver_argv(binary, pki, etcd_url, port), state_dir)
    context = _ssl_context(pki)
    procs.wait_process_ready(
        process, lambda: _get_ok(f"{server}/readyz", context), timeout, "kube-apiserver"
    )
    return process, server


def _delegating_flags(config: Path, port: int, state_dir: Path, name: str) -> list[str]:
    """Serving and delegated-auth flags shared by controller-manager and scheduler."""
    return [
        f"--kubeconfig={config}",
        f"--authentication-kubeconfig={config}",
        f"--authorization-kubeconfig={config}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={state_dir / 'serving' / name}",
        "--leader-elect=false",
    ]


def _start_controller_manager(
    binary: Path, plane: ControlPlane, timeout: float
) -> procs.ManagedProcess:
    pki, port = plane.pki, procs.free_port()
    config = kubeconfig.write_kubeconfig(
        plane.state_dir / "kubeconfigs" / "controller-manager.kubeconfig",
        plane.server,
        pki.ca.cert,
        pki.controller_manager,
        "system:kube-controller-manager",
    )
    argv = [str(binary), *_delegating_flags(config, port, plane.state_dir, "controller-manager")]
    argv += [
        # Each controller (job, garbage collector, ...) acts as its own service account.
        "--use-service-account-credentials=true",
        "--controllers=*",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        f"--cluster-signing-cert-file={pki.ca.cert}",
        f"--cluster-signing-key-file={pki.ca.key}",
    ]
    process = _start("kube-controller-manager", argv, plane.state_dir)
    url = f"https://127.0.0.1:{port}/healthz"
    context = _ssl_context(None)
    procs.wait_process_ready(
        process, lambda: _get_ok(url, context), timeout, "kube-controller-manager"
    )
    return process


def _start_scheduler(binary: Path, plane: ControlPlane, timeout: float) -> procs.ManagedProcess:
    pki, port = plane.pki, procs.free_port()
    config = kubeconfig.write_kubeconfig(
        plane.state_dir / "kubeconfigs" / "scheduler.kubeconfig",
        plane.server,
        pki.ca.cert,
        pki.scheduler,
        "system:kube-scheduler",
    )
    argv = [str(binary), *_delegating_flags(config, port, plane.state_dir, "scheduler")]
    process = _start("kube-scheduler", argv, plane.state_dir)
    url = f"https://127.0.0.1:{port}/healthz"
    context = _ssl_context(None)
    procs.wait_process_ready(process, lambda: _get_ok(url, context), timeout, "kube-scheduler")
    return process


def _wait_default_service_account(plane: ControlPlane, timeout: float) -> None:
    """Pods are refused until the service-account controller made ``default/default``."""
    api = kubeapi.NodeApi(plane.kubeconfig)

    def exists() -> bool:
        api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return True

    log = plane.state_dir / "logs" / "kube-controller-manager.log"
    try:
        procs.wait_until(exists, timeout, "kube-controller-manager (default service account)", log)
    finally:
        api.close()


def start(state_dir: Path, binaries: build.Binaries, timeout: float = 90.0) -> ControlPlane:
    """Start the control plane with its state in ``state_dir``; return it when healthy.

    Raises `procs.ComponentError` naming the component (with its log tail) that failed;
    whatever had started is stopped first.
    """
    started = time.monotonic()
    state_dir.mkdir(parents=True, exist_ok=True)
    pki = certs.make_pki(state_dir / "pki")
    processes: list[procs.ManagedProcess] = []
    try:
        etcd, etcd_url = _start_etcd(binaries.etcd, state_dir, timeout)
        processes.append(etcd)
        apiserver, server = _start_apiserver(
            binaries.kube_apiserver, pki, etcd_url, state_dir, timeout
        )
        processes.append(apiserver)
        admin = kubeconfig.write_kubeconfig(
            state_dir / "kubeconfigs" / "admin.kubeconfig",
            server,
            pki.ca.cert,
            pki.admin,
            "shutterline-admin",
        )
        plane = ControlPlane(state_dir, server, pki, admin, processes)
        processes.append(
            _start_controller_manager(binaries.kube_controller_manager, plane, timeout)
        )
        processes.append(_start_scheduler(binaries.kube_scheduler, plane, timeout))
        _wait_default_service_account(plane, timeout)
    except BaseException:
        for process in reversed(processes):
            process.stop()
        raise
    builds.say(f"control plane ready at {server} in {time.monotonic() - started:.1f} s")
    return plane
