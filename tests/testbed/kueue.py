"""Kueue, the Kubernetes-native job queueing controller, as a test-bed component.

``ensure_built()`` builds ``sigs.k8s.io/kueue/cmd/kueue`` at `KUEUE_VERSION` once through the
Go module proxy; ``start(cluster, state_dir)`` applies the module's CRDs
(``config/components/crd/bases``) to the test bed's API server, registers the admission
webhooks Kueue needs and runs the controller manager as a local process against the API server.

Why v0.14.8: the proxy this machine reaches holds v0.14.0, v0.14.8, v0.15.0 and v0.17.0 only;
from v0.15 the ``v1beta2`` API is served through conversion webhooks that the API server must
reach for every stored object, v0.14 has none, and v0.14.8 is its newest patch release.

The webhooks: in a cluster the API server reaches Kueue through a Service; here nothing routes
service IPs, so each webhook is registered with ``url: https://127.0.0.1:<port>/<path>``. Kueue's
internal certificate rotator (on by default) insists on a Secret holding a CA (``DNS:kueue-ca``,
RSA PKCS#1 key) and a serving certificate for ``kueue-webhook-service.<ns>.svc``; we seed that
Secret with our own pair whose serving certificate also names ``IP:127.0.0.1``, and write the
same files where the kubelet would mount it. The rotator then accepts it, injects the CA into
both webhook configurations and reports ready. (Turning the rotator off is no way out: Kueue
then reads its metrics certificate from the fixed path ``/etc/kueue/metrics/certs``.)
Only the ``batch/job`` integration is enabled; webhooks for the other frameworks (pods,
deployments, Ray, Kubeflow, JobSet, ...) are not registered, so no other object pays a
webhook call. The visibility API server (fixed port 8082) is switched off by its feature gate.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.testbed import builds, procs
from tests.testbed.k8s import certs, cluster, tools

__all__ = [
    "KUEUE_VERSION",
    "NAMESPACE",
    "Kueue",
    "cluster_queue",
    "crd_manifests",
    "ensure_built",
    "local_queue",
    "module_dir",
    "resource_flavor",
    "start",
    "webhook_configurations",
    "workload_priority_class",
]

KUEUE_MODULE = "sigs.k8s.io/kueue"
KUEUE_VERSION = "v0.14.8"
NAMESPACE = "kueue-system"
_SERVICE = "kueue-webhook-service"
_SECRET = "kueue-webhook-server-cert"
# API groups whose webhooks stay registered: Kueue's own objects and batch Jobs.
_KEPT_GROUPS = {"kueue.x-k8s.io", "batch"}


def _pods_holding_quota(workload: dict[str, Any]) -> int:
    """An admitted Workload's pods less those whose quota Kueue has reclaimed."""
    pods = sum(int(p.get("count", 1)) for p in workload["spec"]["podSets"])
    reclaimed = workload.get("status", {}).get("reclaimablePods") or []
    return pods - sum(int(r["count"]) for r in reclaimed)


def ensure_built(version: str = KUEUE_VERSION) -> Path:
    """The ``kueue`` controller-manager binary of ``version``, built once (a few minutes)."""
    return builds.go_build("kueue", f"{KUEUE_MODULE}/cmd/kueue", version, "kueue")


def module_dir(version: str = KUEUE_VERSION) -> Path:
    """The unpacked ``sigs.k8s.io/kueue@version`` module (downloaded through the proxy once)."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"{KUEUE_MODULE}@{version}"],
        capture_output=True,
        text=True,
        cwd=procs.cache_dir("kueue", version),
        env=dict(os.environ, GOFLAGS="-mod=mod"),
        check=False,
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        detail = info.get("Error") or result.stderr
        raise procs.ComponentError(f"kueue: cannot download {KUEUE_MODULE}@{version}: {detail}")
    return Path(info["Dir"])


def crd_manifests(version: str = KUEUE_VERSION) -> list[Path]:
    """The CRD files of the module's ``config/components/crd/bases``."""
    found = sorted((module_dir(version) / "config" / "components" / "crd" / "bases").glob("*.yaml"))
    if not found:
        raise procs.ComponentError(f"kueue {version}: no CRDs in config/components/crd/bases")
    return found


def webhook_configurations(port: int, ca_pem: bytes, version: str = KUEUE_VERSION) -> list[Any]:
    """Kueue's webhook configurations, pointed at ``https://127.0.0.1:port``.

    Read from the module's ``config/components/webhook/manifests.yaml``; named as the
    kustomize overlay names them (the rotator looks them up by these names); only webhooks
    for `_KEPT_GROUPS` are kept.
    """
    path = module_dir(version) / "config" / "components" / "webhook" / "manifests.yaml"
    bundle = base64.b64encode(ca_pem).decode()
    documents = []
    for document in yaml.safe_load_all(path.read_text()):
        kind = "mutating" if document["kind"].startswith("Mutating") else "validating"
        document["metadata"] = {"name": f"kueue-{kind}-webhook-configuration"}
        hooks = []
        for hook in document["webhooks"]:
            groups = {group for rule in hook["rules"] for group in rule["apiGroups"]}
            if not groups <= _KEPT_GROUPS:
                continue
            service_path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{service_path}"}
            hook["clientConfig"]["caBundle"] = bundle
            hooks.append(hook)
        document["webhooks"] = hooks
        documents.append(document)
    return documents


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise procs.ComponentError(f"kueue certificates: openssl {args[0]} failed: {result.stderr}")


def _make_certs(directory: Path) -> tuple[certs.KeyPair, certs.KeyPair]:
    """The CA and serving pair Kueue's rotator accepts (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = certs.KeyPair(directory / "ca.crt", directory / "ca.key")
    # The rotator parses the CA key as PKCS#1 RSA and checks the CA against DNS name kueue-ca.
    _openssl("genrsa", "-traditional", "-out", str(ca.key), "2048")
    _openssl(
        "req",
        "-x509",
        "-key",
        str(ca.key),
        "-out",
        str(ca.cert),
        "-days",
        "3650",
        "-subj",
        "/O=kueue/CN=kueue-ca",
        "-addext",
        "subjectAltName=DNS:kueue-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,digitalSignature,keyEncipherment",
    )
    dns = f"{_SERVICE}.{NAMESPACE}.svc"
    serving = certs.issue(directory, "serving", ca, dns, sans=(f"DNS:{dns}", "IP:127.0.0.1"))
    return ca, serving


def _secret(ca: certs.KeyPair, serving: certs.KeyPair) -> dict[str, Any]:
    files = {"ca.crt": ca.cert, "ca.key": ca.key, "tls.crt": serving.cert, "tls.key": serving.key}
    data = {key: base64.b64encode(path.read_bytes()).decode() for key, path in files.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": _SECRET, "namespace": NAMESPACE},
        "data": data,
    }


def _configuration(port: int, health_port: int, cert_dir: Path) -> dict[str, Any]:
    """Kueue's ``Configuration`` for one local process on loopback."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta1",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        # "0": no metrics server (it would want its own certificates and authorizer).
        "metrics": {"bindAddress": "0"},
        "webhook": {"port": port, "host": "127.0.0.1", "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {
            "enable": True,
            "webhookServiceName": _SERVICE,
            "webhookSecretName": _SECRET,
        },
        "clientConnection": {"qps": 100, "burst": 200},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
        "featureGates": {"VisibilityOnDemand": False},
    }


@dataclass
class Kueue:
    """A running Kueue controller manager and how it was wired."""

    process: procs.ManagedProcess
    kubeconfig: Path
    webhook_port: int
    health_port: int
    version: str = KUEUE_VERSION
    applied: list[str] = field(default_factory=list)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """kubectl with the test bed's admin kubeconfig."""
        return tools.run_kubectl(self.kubeconfig, *args, stdin=stdin, check=check)

    def apply(self, *objects: dict[str, Any]) -> None:
        """Server-side apply ``objects`` (Kueue's webhooks default and validate them)."""
        text = yaml.safe_dump_all(list(objects), sort_keys=False)
        self.kubectl("apply", "--server-side", "--field-manager=testbed", "-f", "-", stdin=text)

    def setup_queues(
        self,
        namespace: str,
        quota: dict[str, str],
        name: str = "shutterline",
        node_labels: dict[str, str] | None = None,
        tolerations: list[dict[str, str]] | None = None,
        hold: bool = False,
    ) -> str:
        """A ResourceFlavor, a ClusterQueue with ``quota`` and a LocalQueue in ``namespace``.

        All three are called ``name`` (the LocalQueue's name is what a Job's
        ``kueue.x-k8s.io/queue-name`` label gives). ``quota`` maps each resource the pods
        request (``cpu``, ``memory``, ...) to its nominal quota; a pod requesting a resource
        not in it is never admitted. ``node_labels`` and ``tolerations`` of the flavor are
        added to admitted pods (e.g. to steer them onto KWOK nodes). With ``hold`` the
        ClusterQueue admits nothing until `release` (so a test can line up its workloads
        first). Returns ``name``.
        """
        self.apply(
            resource_flavor(name, node_labels, tolerations),
            cluster_queue(name, name, quota, hold),
            local_queue(namespace, name, name),
        )
        return name

    def release(self, cluster_queue_name: str) -> None:
        """Let a held ClusterQueue admit (``stopPolicy: None``)."""
        patch = json.dumps({"spec": {"stopPolicy": "None"}})
        self.kubectl("patch", "clusterqueue", cluster_queue_name, "--type=merge", "-p", patch)

    def priority_class(self, name: str, value: int) -> str:
        """Create or update WorkloadPriorityClass ``name`` with ``value``; returns ``name``."""
        self.apply(workload_priority_class(name, value))
        return name

    def workloads(self, namespace: str) -> list[dict[str, Any]]:
        """The Workload objects Kueue made in ``namespace``."""
        result = self.kubectl("get", "workloads.kueue.x-k8s.io", "-n", namespace, "-o", "json")
        return list(json.loads(result.stdout)["items"])

    def admission_order(
        self, namespace: str, count: int, timeout: float = 120.0
    ) -> tuple[list[str], int]:
        """Poll until ``count`` Workloads in ``namespace`` have been admitted.

        Returns the owners' (Jobs') names in the order their admission was first seen, and
        the most pods seen holding quota at once. Kueue reclaims a finished pod's quota
        before its Workload is ``Finished`` (``status.reclaimablePods``, KEP-78), so the
        next Workload may be admitted while the last one is still unfinished; counting
        pods, not Workloads, is what the quota bounds. Raises `procs.ComponentError` after
        ``timeout``.
        """
        order: list[str] = []
        most = 0

        def admitted_all() -> bool:
            nonlocal most
            active = 0
            for workload in self.workloads(namespace):
                owner = workload["metadata"]["ownerReferences"][0]["name"]
                states = {
                    c["type"]
                    for c in workload.get("status", {}).get("conditions") or []
                    if c["status"] == "True"
                }
                if "Admitted" not in states:
                    continue
                if owner not in order:
                    order.append(owner)
                if "Finished" not in states:
                    active += _pods_holding_quota(workload)
            most = max(most, active)
            return len(order) >= count

        procs.wait_until(admitted_all, timeout, f"{count} Kueue workloads admitted", self.log)
        return order, most

    @property
    def log(self) -> Path:
        """The controller manager's log file."""
        return self.process.log

    def env(self) -> dict[str, str]:
        """What ``python -m tests.testbed up`` would export for it (nothing: it has no API)."""
        return {}

    def stop(self) -> None:
        """Stop the controller manager."""
        self.process.stop()


_GROUP = "kueue.x-k8s.io/v1beta1"


def resource_flavor(
    name: str,
    node_labels: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A ResourceFlavor; its ``nodeLabels``/``tolerations`` go into admitted pods."""
    spec: dict[str, Any] = {}
    if node_labels:
        spec["nodeLabels"] = node_labels
    if tolerations:
        spec["tolerations"] = tolerations
    return {
        "apiVersion": _GROUP,
        "kind": "ResourceFlavor",
        "metadata": {"name": name},
        "spec": spec,
    }


def cluster_queue(
    name: str, flavor: str, quota: dict[str, str], hold: bool = False
) -> dict[str, Any]:
    """A ClusterQueue open to every namespace with one flavor of nominal ``quota``.

    Strict FIFO: the head of the queue (highest priority, then oldest) blocks the rest, so
    admission order is priority order even when a smaller workload would fit. ``hold``:
    ``stopPolicy: Hold`` (nothing admitted until it is set to ``None``).
    """
    resources = [{"name": resource, "nominalQuota": amount} for resource, amount in quota.items()]
    return {
        "apiVersion": _GROUP,
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {},
            "queueingStrategy": "StrictFIFO",
            "stopPolicy": "Hold" if hold else "None",
            "resourceGroups": [
                {
                    "coveredResources": sorted(quota),
                    "flavors": [{"name": flavor, "resources": resources}],
                }
            ],
        },
    }


def local_queue(namespace: str, name: str, cluster_queue_name: str) -> dict[str, Any]:
    """A LocalQueue in ``namespace`` feeding ClusterQueue ``cluster_queue_name``."""
    return {
        "apiVersion": _GROUP,
        "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue_name},
    }


def workload_priority_class(name: str, value: int) -> dict[str, Any]:
    """A WorkloadPriorityClass (a Job names it in ``kueue.x-k8s.io/priority-class``)."""
    return {
        "apiVersion": _GROUP,
        "kind": "WorkloadPriorityClass",
        "metadata": {"name": name},
        "value": value,
        "description": f"Shutterline test-bed priority {value}",
    }


def _apply_files(kubeconfig: Path, paths: list[Path]) -> None:
    argv = ["apply", "--server-side", "--force-conflicts", "--field-manager=testbed"]
    for path in paths:
        argv += ["-f", str(path)]
    tools.run_kubectl(kubeconfig, *argv, timeout=120)


def _wait_crds_established(kubeconfig: Path, paths: list[Path]) -> None:
    names = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in paths]
    argv = ["wait", "--for=condition=Established", "--timeout=60s"]
    tools.run_kubectl(kubeconfig, *argv, *[f"crd/{name}" for name in names], timeout=90)


def _webhooks_answer(kubeconfig: Path) -> bool:
    """Whether the API server reaches Kueue's webhooks (a server-side dry-run create)."""
    flavor = {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "ResourceFlavor",
        "metadata": {"name": "testbed-readiness-probe"},
    }
    result = tools.run_kubectl(
        kubeconfig, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(flavor), check=False
    )
    return result.returncode == 0


def start(bed: cluster.Cluster, state_dir: Path, timeout: float = 120.0) -> Kueue:
    """Install Kueue's CRDs and webhooks on ``bed`` and start its controller manager.

    Returns once Kueue reports ready and the API server reaches its webhooks. Raises
    `procs.ComponentError` with the log tail if it does not come up within ``timeout``.
    """
    binary = ensure_built()
    started = time.monotonic()
    state_dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = bed.kubeconfig
    crds = crd_manifests()
    _apply_files(kubeconfig, crds)
    ca, serving = _make_certs(state_dir / "pki")
    cert_dir = state_dir / "serving-certs"
    cert_dir.mkdir(exist_ok=True)
    # Where the kubelet would mount the Secret: the rotator waits for these files.
    (cert_dir / "tls.crt").write_bytes(serving.cert.read_bytes())
    (cert_dir / "tls.key").write_bytes(serving.key.read_bytes())
    port, health_port = procs.free_port(), procs.free_port()
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    objects = [namespace, _secret(ca, serving), *webhook_configurations(port, ca.cert.read_bytes())]
    manifest = state_dir / "install.yaml"
    manifest.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    _wait_crds_established(kubeconfig, crds)
    _apply_files(kubeconfig, [manifest])
    config = state_dir / "config.yaml"
    config.write_text(yaml.safe_dump(_configuration(port, health_port, cert_dir)))
    argv = [str(binary), f"--config={config}", "--zap-log-level=info"]
    log = state_dir / "logs" / "kueue.log"
    process = procs.ManagedProcess(
        "kueue", argv, log, env={"KUBECONFIG": str(kubeconfig)}, cwd=state_dir
    ).start()
    procs.wait_process_ready(
        process,
        lambda: _ready(health_port) and _webhooks_answer(kubeconfig),
        timeout,
        "kueue (readyz and webhooks reachable from the API server)",
    )
    builds.say(f"Kueue {KUEUE_VERSION} up in {time.monotonic() - started:.1f} s")
    return Kueue(process, kubeconfig, port, health_port)


def _ready(health_port: int) -> bool:
    import urllib.request

    url = f"http://127.0.0.1:{health_port}/readyz"
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)
