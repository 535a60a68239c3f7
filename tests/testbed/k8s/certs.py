"""The test bed's PKI, made with the ``openssl`` command: a CA, serving and client certificates.

Every key is ECDSA P-256 (fast to generate, accepted by every Kubernetes component). Client
identities follow Kubernetes' conventions: the certificate's CN is the user name and each O is
a group, so ``system:node:<name>`` in ``system:nodes`` is a node to the Node authorizer.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import procs

__all__ = ["KeyPair", "Pki", "issue", "make_ca", "make_pki", "make_service_account_key"]

_DAYS = "3650"
_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
# The apiserver's serving names: loopback, and the names in-cluster clients would use.
APISERVER_SANS = (
    "IP:127.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
    "IP:10.0.0.1",
)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Everything the control plane and its clients authenticate with."""

    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    kubelet_client: KeyPair
    service_account_key: Path
    service_account_pub: Path

    def node(self, name: str) -> KeyPair:
        """The client pair of node ``name`` (issued on demand, then reused)."""
        directory = self.ca.cert.parent
        pair = KeyPair(directory / f"node-{name}.crt", directory / f"node-{name}.key")
        if pair.cert.exists():
            return pair
        return issue(directory, f"node-{name}", self.ca, f"system:node:{name}", ["system:nodes"])

    def node_serving(self, name: str) -> KeyPair:
        """The serving pair of node ``name``'s log endpoint (``127.0.0.1``)."""
        directory = self.ca.cert.parent
        pair = KeyPair(
            directory / f"node-{name}-serving.crt", directory / f"node-{name}-serving.key"
        )
        if pair.cert.exists():
            return pair
        return issue(
            directory,
            f"node-{name}-serving",
            self.ca,
            f"system:node:{name}",
            ["system:nodes"],
            sans=("IP:127.0.0.1", f"DNS:{name}"),
        )


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise procs.ComponentError(f"certificates: openssl {args[0]} failed: {result.stderr}")


def make_ca(directory: Path) -> KeyPair:
    """A self-signed CA (``ca.crt``, ``ca.key``) valid ten years."""
    directory.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(directory / "ca.crt", directory / "ca.key")
    _openssl(
        "req",
        "-x509",
        *_CURVE,
        "-keyout",
        str(pair.key),
        "-out",
        str(pair.cert),
        "-days",
        _DAYS,
        "-subj",
        "/CN=shutterline-testbed-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )
    return pair


def issue(
    directory: Path,
    name: str,
    ca: KeyPair,
    common_name: str,
    groups: list[str] | None = None,
    sans: tuple[str, ...] = (),
) -> KeyPair:
    """Issue ``<name>.crt``/``<name>.key`` signed by ``ca``.

    A certificate with ``sans`` is a serving certificate (``serverAuth``) for those names;
    without, a client certificate (``clientAuth``) for user ``common_name`` in ``groups``.
    """
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    subject = "".join(f"/O={group}" for group in groups or []) + f"/CN={common_name}"
    _openssl("req", "-new", *_CURVE, "-keyout", str(pair.key), "-out", str(csr), "-subj", subject)
    usage = "serverAuth" if sans else "clientAuth"
    extensions = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        extensions.append("subjectAltName=" + ",".join(sans))
    extfile = directory / f"{name}.ext"
    extfile.write_text("\n".join(extensions) + "\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca.cert),
        "-CAkey",
        str(ca.key),
        "-set_serial",
        str(secrets.randbits(63)),
        "-days",
        _DAYS,
        "-sha256",
        "-extfile",
        str(extfile),
        "-out",
        str(pair.cert),
    )
    csr.unlink()
    extfile.unlink()
    return pair


def make_service_account_key(directory: Path) -> tuple[Path, Path]:
    """The key pair that signs service-account tokens (``sa.key``, ``sa.pub``)."""
    key, pub = directory / "sa.key", directory / "sa.pub"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    _openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub))
    return key, pub


def make_pki(directory: Path) -> Pki:
    """Create the whole PKI of one test bed in ``directory``."""
    ca = make_ca(directory)
    sa_key, sa_pub = make_service_account_key(directory)
    return Pki(
        ca=ca,
        apiserver=issue(directory, "apiserver", ca, "kube-apiserver", sans=APISERVER_SANS),
        admin=issue(directory, "admin", ca, "shutterline-admin", ["system:masters"]),
        controller_manager=issue(
            directory, "controller-manager", ca, "system:kube-controller-manager"
        ),
        scheduler=issue(directory, "scheduler", ca, "system:kube-scheduler"),
        # How the API server authenticates to node agents (kubectl logs).
        kubelet_client=issue(
            directory,
            "apiserver-kubelet-client",
            ca,
            "kube-apiserver-kubelet-client",
            ["system:masters"],
        ),
        service_account_key=sa_key,
        service_account_pub=sa_pub,
    )
