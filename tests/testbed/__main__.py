"""``python -m tests.testbed up|down|build|status``: the whole test bed as long-lived processes.

``up`` starts Kubernetes (control plane + one node agent) and whichever service modules
exist (``tests/testbed/{s3,kafka,postgres,otlp,registry}.py``, each with ``start(state_dir)``),
waits until each is healthy, writes ``.testbed/kubeconfig`` and ``.testbed/env`` and prints
what runs. A second ``up`` finds the bed by its pid files and health checks and reuses it.
``down`` stops every process and removes ``.testbed``. ``build`` only builds or fetches the
binaries.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.testbed import procs
from tests.testbed.k8s import build, cluster, images, kubeapi, tools

__all__ = ["main"]

STATE = images.REPO_ROOT / ".testbed"
SERVICES = ("s3", "kafka", "postgres", "otlp", "registry")
# Processes that want another signal than SIGTERM for a prompt, clean stop.
_STOP_SIGNALS = {"postgresql": signal.SIGINT}


def _service(name: str) -> ModuleType | None:
    """The service module ``tests.testbed.<name>`` if it exists and has ``start``."""
    try:
        module = importlib.import_module(f"tests.testbed.{name}")
    except ModuleNotFoundError:
        return None
    return module if hasattr(module, "start") else None


def _processes(handle: Any) -> list[procs.ManagedProcess]:
    """Every `procs.ManagedProcess` a component handle holds (one level deep)."""
    found: list[procs.ManagedProcess] = []
    for value in vars(handle).values():
        items = value if isinstance(value, list) else [value]
        found += [item for item in items if isinstance(item, procs.ManagedProcess)]
    return found


def _record(component: str, handle: Any, state: dict[str, Any]) -> None:
    """Write a pid file per process of ``component`` and remember what to clean up."""
    pids = STATE / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {"processes": [], "cleanup": []}
    for process in _processes(handle):
        assert process.proc is not None
        name = process.name.replace(" ", "-")
        (pids / f"{component}.{name}.pid").write_text(f"{process.proc.pid}\n")
        entry["processes"].append({"name": process.name, "pid": process.proc.pid})
    data_dir = getattr(handle, "data_dir", None)
    if isinstance(data_dir, Path):
        entry["cleanup"].append(str(data_dir))
    state["components"].append({"component": component, **entry})


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _load_state() -> dict[str, Any] | None:
    path = STATE / "state.json"
    return dict(json.loads(path.read_text())) if path.exists() else None


def _running(state: dict[str, Any]) -> bool:
    """Whether every recorded process lives and the API server is ready."""
    pids = [p["pid"] for c in state["components"] for p in c["processes"]]
    if not pids or not all(_alive(pid) for pid in pids):
        return False
    api = kubeapi.NodeApi(STATE / "kubeconfig")
    try:
        return api.healthy()
    finally:
        api.close()


def _env_file(k8s: cluster.Cluster, handles: dict[str, Any]) -> dict[str, str]:
    """Variables for ``.testbed/env``: every service's ``env()`` plus short aliases."""
    env = {
        "KUBECONFIG": str(STATE / "kubeconfig"),
        "TESTBED_KUBECTL": str(k8s.binaries.kubectl),
        "TESTBED_HELM": str(k8s.binaries.helm),
        "KUBERNETES_SERVER": k8s.server,
    }
    for handle in handles.values():
        if hasattr(handle, "env"):
            env.update(handle.env())
    if "kafka" in handles:
        env["KAFKA_BOOTSTRAP"] = handles["kafka"].bootstrap
    if "otlp" in handles:
        env["OTLP_ENDPOINT"] = handles["otlp"].endpoint
    if "postgres" in handles:
        pg = handles["postgres"]
        env["POSTGRES_URL"] = f"postgresql+psycopg2://{pg.user}@{pg.host}:{pg.port}/postgres"
    return env


def _summary(state: dict[str, Any]) -> str:
    lines = [f"  {name:<11} {where}" for name, where in state["endpoints"].items()]
    lines.append(f"  kubeconfig  {STATE / 'kubeconfig'}")
    lines.append(f"  env file    {STATE / 'env'}  (set -a; . {STATE / 'env'}; set +a)")
    lines.append(f"  kubectl     {state['kubectl']} (kubectl {tools.KUBECTL_VERSION})")
    return "\n".join(lines)


def _start_all(state: dict[str, Any], handles: dict[str, Any]) -> cluster.Cluster:
    k8s = cluster.start(STATE / "k8s")
    handles["kubernetes"] = k8s
    _record("kubernetes", _K8sProcesses(k8s), state)
    shutil.copy(k8s.kubeconfig, STATE / "kubeconfig")
    state["endpoints"]["kubernetes"] = (
        f"{k8s.server} (Kubernetes {build.KUBERNETES_VERSION}, etcd {build.ETCD_VERSION}, "
        f"nodes {', '.join(k8s.node_names)})"
    )
    state["kubectl"] = str(k8s.binaries.kubectl)
    for name in SERVICES:
        module = _service(name)
        if module is None:
            state["endpoints"][name] = f"(not started: tests/testbed/{name}.py has no start)"
            continue
        handle = module.start(STATE / name)
        handles[name] = handle
        _record(name, handle, state)
        where = getattr(handle, "endpoint_url", None) or getattr(handle, "endpoint", None)
        if name == "kafka":
            where = handle.bootstrap
        if name == "postgres":
            where = f"{handle.host}:{handle.port} (user {handle.user})"
        state["endpoints"][name] = str(where)
    return k8s


class _K8sProcesses:
    """The Kubernetes processes in stop order's reverse: control plane, then agents."""

    def __init__(self, k8s: cluster.Cluster) -> None:
        self.processes = [*k8s.plane.processes, *k8s.agents]


def up() -> int:
    """Start the bed, or report the running one."""
    state = _load_state()
    if state is not None and _running(state):
        print(f"test bed already running (started {state['started']}):\n{_summary(state)}")
        return 0
    if state is not None or STATE.exists():
        print("removing a stale test bed first")
        down()
    STATE.mkdir(parents=True)
    started = time.monotonic()
    state = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "components": [], "endpoints": {}}
    handles: dict[str, Any] = {}
    try:
        k8s = _start_all(state, handles)
    except BaseException:
        for handle in reversed(list(handles.values())):
            with contextlib.suppress(Exception):
                handle.stop()
        shutil.rmtree(STATE, ignore_errors=True)
        raise
    env = _env_file(k8s, handles)
    (STATE / "env").write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    (STATE / "state.json").write_text(json.dumps(state, indent=2))
    print(f"test bed up in {time.monotonic() - started:.1f} s:\n{_summary(state)}")
    return 0


def _stop_pid(name: str, pid: int, timeout: float = 30.0) -> None:
    """Signal process group ``pid`` (SIGTERM or the component's own), then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, _STOP_SIGNALS.get(name, signal.SIGTERM))
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def down() -> int:
    """Stop every recorded process (services first) and remove ``.testbed``."""
    state = _load_state() or {"components": []}
    for component in reversed(state["components"]):
        for process in reversed(component["processes"]):
            started = time.monotonic()
            _stop_pid(process["name"], int(process["pid"]))
            print(f"  stopped {process['name']} in {time.monotonic() - started:.1f} s")
        for path in component["cleanup"]:
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(STATE, ignore_errors=True)
    print(f"test bed stopped; {STATE} removed")
    return 0


def _build_core() -> None:
    """The Kubernetes half, then each service's binaries."""
    build.ensure_all()
    for name in SERVICES:
        module = _service(name)
        for function in ("ensure_built", "ensure_fetched"):
            if module is not None and hasattr(module, function):
                getattr(module, function)()


def _build_extras() -> None:
    """Kueue, KWOK and Chromium, which fixtures would otherwise build lazily mid-test."""
    from tests.testbed import chromium, kueue, kwok

    kueue.ensure_built()
    kwok.ensure_built()
    chromium.ensure_chromium()


def build_all() -> int:
    """Build or fetch every pinned binary, the core and the extras side by side.

    On a fresh machine the two halves overlap their downloads and compiles, so ``make test``
    pays the longest of them rather than their sum; each piece holds its own file lock.
    """
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(_build_core), pool.submit(_build_extras)]:
            future.result()
    print(f"test-bed binaries ready in {time.monotonic() - started:.0f} s")
    return 0


def status() -> int:
    """Say whether a bed runs (exit 0) or not (exit 1)."""
    state = _load_state()
    if state is not None and _running(state):
        print(f"test bed running (started {state['started']}):\n{_summary(state)}")
        return 0
    print("no test bed running")
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tests.testbed``."""
    parser = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "build", "status"])
    command = parser.parse_args(argv).command
    actions = {"up": up, "down": down, "build": build_all, "status": status}
    try:
        return actions[command]()
    except procs.ComponentError as error:
        print(f"test bed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
