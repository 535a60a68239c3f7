"""Build the pinned control-plane binaries once from their Go modules, through the Go proxy.

``k8s.io/kubernetes`` (and etcd's server module) carry ``replace`` directives that point at
in-tree staging folders, so ``go install pkg@version`` refuses them. Instead a throwaway main
module under ``~/.cache/shutterline/testbed/<component>/<version>/src`` requires the release
and replaces every ``k8s.io/<staging>`` module by its published ``v0.Y.Z`` twin; ``go build``
then builds the commands from the module cache. A finished build is stamped ``.complete``;
a cached binary of the pinned version makes every later call return at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import builds, procs
from tests.testbed.k8s import tools

__all__ = [
    "ETCD_VERSION",
    "KUBERNETES_COMMANDS",
    "KUBERNETES_VERSION",
    "STAGING_VERSION",
    "Binaries",
    "ensure_all",
    "ensure_etcd",
    "ensure_kubernetes",
    "kubernetes_build_gomod",
]

# The Go proxy this machine reaches holds only some patch releases of the staging modules;
# 1.33.13 is the newest 1.33 release for which k8s.io/kubernetes and every staging module it
# needs are all there. kubectl 1.33.9 (tools.KUBECTL_VERSION) is within the supported skew.
KUBERNETES_VERSION = "v1.33.13"
STAGING_VERSION = "v0.33.13"
# The etcd that Kubernetes 1.33 is tested with (its go.mod requires the v3.5.21 client).
ETCD_VERSION = "v3.5.21"
ETCD_PACKAGE = "go.etcd.io/etcd/server/v3"
KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
_BUILD_ENV = {"GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0"}


@dataclass(frozen=True)
class Binaries:
    """Paths of every cached test-bed executable of the Kubernetes half."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    helm: Path


def ensure_all() -> Binaries:
    """Build or fetch whatever is missing (first run: tens of minutes) and return the paths."""
    k8s = ensure_kubernetes()
    kubectl, helm = tools.ensure_tools()
    return Binaries(
        etcd=ensure_etcd(),
        kube_apiserver=k8s["kube-apiserver"],
        kube_controller_manager=k8s["kube-controller-manager"],
        kube_scheduler=k8s["kube-scheduler"],
        kubectl=kubectl,
        helm=helm,
    )


def _require_go(component: str) -> None:
    if shutil.which("go") is None:
        raise procs.ComponentError(
            f"{component}: the Go toolchain ('go' on PATH) is needed to build it once"
        )


def _stamp(home: Path, started: float) -> None:
    (home / ".complete").write_text(f"built in {time.monotonic() - started:.0f} s\n")


def ensure_etcd(version: str = ETCD_VERSION) -> Path:
    """The etcd server binary of ``version``, built once from ``go.etcd.io/etcd/server/v3``."""
    home = procs.cache_dir("etcd", version)
    target = home / "bin" / "etcd"
    with builds.locked(home):
        if builds.built_once(home) and target.exists():
            return target
        started = time.monotonic()
        _require_go("etcd")
        builds.say(f"building etcd {version} from its Go module (first run only)")
        src = home / "src"
        src.mkdir(exist_ok=True)
        gomod = "module shutterline.local/testbed-build/etcd\n\ngo 1.24.0\n\n"
        (src / "go.mod").write_text(gomod + f"require {ETCD_PACKAGE} {version}\n")
        argv = ["go", "build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(target)]
        builds.run_with_progress(
            "etcd", [*argv, ETCD_PACKAGE], home / "build.log", "go build etcd", _BUILD_ENV, src
        )
        _stamp(home, started)
        builds.say(f"etcd built in {time.monotonic() - started:.0f} s: {target}")
        return target


def kubernetes_build_gomod(kubernetes_gomod: str, version: str, staging_version: str) -> str:
    """The ``go.mod`` of a throwaway module that builds ``k8s.io/kubernetes`` at ``version``.

    Parameters
    ----------
    kubernetes_gomod
        Text of ``k8s.io/kubernetes``'s own ``go.mod`` at ``version``.
    version, staging_version
        The release (``v1.Y.Z``) and the matching staging-module version (``v0.Y.Z``).

    Returns
    -------
    str
        A ``go.mod`` requiring the release and replacing each staging module that the release
        replaces with a local folder (``=> ./staging/...``) by its published version.
    """
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_gomod, re.M)
    if not staging:
        raise procs.ComponentError("kubernetes: no staging replace directives in its go.mod")
    lines = [f"\t{module} => {module} {staging_version}" for module in staging]
    return (
        "module shutterline.local/testbed-build/kubernetes\n\ngo 1.24.0\n\n"
        f"require k8s.io/kubernetes {version}\n\nreplace (\n" + "\n".join(lines) + "\n)\n"
    )


def _kubernetes_gomod_text(version: str, cwd: Path) -> str:
    """Download ``k8s.io/kubernetes@version``'s go.mod through the proxy and return its text."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ, GOFLAGS="-mod=mod"),
        check=False,
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "GoMod" not in info:
        detail = info.get("Error") or result.stderr
        raise procs.ComponentError(f"kubernetes: cannot fetch k8s.io/kubernetes: {detail}")
    return Path(info["GoMod"]).read_text()


def _version_ldflags(version: str) -> str:
    """Linker flags that make the servers report ``version`` (``/version``, ``--version``)."""
    major, minor = version.lstrip("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor}
    values["gitTreeState"] = "clean"
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def ensure_kubernetes(
    version: str = KUBERNETES_VERSION, staging_version: str = STAGING_VERSION
) -> dict[str, Path]:
    """kube-apiserver, kube-controller-manager and kube-scheduler of ``version``, built once.

    Returns a mapping from command name to the cached executable. The first build compiles
    about 2,500 packages: roughly 25 minutes on two cores, with a progress bar.
    """
    home = procs.cache_dir("kubernetes", version)
    targets = {name: home / "bin" / name for name in KUBERNETES_COMMANDS}
    with builds.locked(home):
        if builds.built_once(home) and all(path.exists() for path in targets.values()):
            return targets
        started = time.monotonic()
        _require_go("kubernetes")
        builds.say(f"building Kubernetes {version} control plane from Go modules (first run only)")
        src = home / "src"
        src.mkdir(exist_ok=True)
        gomod = kubernetes_build_gomod(
            _kubernetes_gomod_text(version, src), version, staging_version
        )
        (src / "go.mod").write_text(gomod)
        argv = ["go", "build", "-v", "-trimpath", "-ldflags", _version_ldflags(version)]
        argv += ["-o", str(home / "bin") + "/"]
        argv += [f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES_COMMANDS]
        log = home / "build.log"
        builds.run_with_progress("kubernetes", argv, log, "go build kubernetes", _BUILD_ENV, src)
        _stamp(home, started)
        builds.say(f"Kubernetes built in {time.monotonic() - started:.0f} s: {home / 'bin'}")
        return targets
