"""A pod's life on the node agent: volumes, init containers, sidecars, main containers.

`PodWorker` is a thread per pod that steps a small state machine every tenth of a second:

``init``: init containers one at a time, in order; a native sidecar (an init container with
``restartPolicy: Always``) is started and left running, the next one starts at once.
``main``: every main container; restarts follow the pod's ``restartPolicy`` (sidecars are
always restarted). ``stopping``: when every main container has finished for good, the
sidecars get SIGTERM in reverse order. A deleted pod has all its processes stopped at once.
Each state change is written to the pod's status (see `podstatus`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.testbed.k8s import (
    containerenv,
    containers,
    images,
    kubeapi,
    kubeconfig_pod,
    podstatus,
    probes,
    volumes,
)

__all__ = ["AgentContext", "PodWorker", "pod_dir"]

log = logging.getLogger("testbed.nodeagent")
_TICK = 0.1
_RETRY_CONFIG = 2.0
_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class AgentContext:
    """What every pod worker shares: the API, the state dir, the API server's address."""

    api: kubeapi.NodeApi
    state_dir: Path
    node_name: str
    backoff_base: float = 0.5
    backoff_max: float = 10.0


def pod_dir(state_dir: Path, pod: dict[str, Any]) -> Path:
    """``<state>/pods/<namespace>_<name>_<uid>``: volumes, container logs, messages."""
    meta = pod["metadata"]
    return state_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"


def _runs(pod: dict[str, Any], directory: Path) -> tuple[list[containers.ContainerRun], ...]:
    spec = pod["spec"]
    inits = [
        containers.ContainerRun(
            c,
            "sidecar" if c.get("restartPolicy") == "Always" else "init",
            directory / "containers" / c["name"],
        )
        for c in spec.get("initContainers") or []
    ]
    mains = [
        containers.ContainerRun(c, "main", directory / "containers" / c["name"])
        for c in spec.get("containers") or []
    ]
    return inits, mains


class PodWorker(threading.Thread):
    """Runs one pod's containers and reports its status until it ends or is deleted."""

    def __init__(self, pod: dict[str, Any], context: AgentContext) -> None:
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.pod, self.context = pod, context
        self.directory = pod_dir(context.state_dir, pod)
        self.inits, self.mains = _runs(pod, self.directory)
        self.phase, self.stage, self.message = "Pending", "init", ""
        self.init_index = 0
        self.volume_dirs: dict[str, Path] | None = None
        self.start_time = kubeapi.now()
        self.conditions = podstatus.Conditions()
        self.deleting = threading.Event()
        self.remove_from_api = True
        self.grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.on_done: Callable[[PodWorker], None] | None = None
        self.probes: dict[str, probes.ExecProbe] = {}

    @property
    def uid(self) -> str:
        """The pod's uid."""
        return str(self.pod["metadata"]["uid"])

    def request_delete(self, grace: float | None, remove_from_api: bool = True) -> None:
        """Stop every container (SIGTERM, then SIGKILL after ``grace`` s) and end the pod.

        With ``remove_from_api`` the agent then finishes the pod's deletion in the API (as
        the kubelet does); without, the pod is only stopped (the agent itself is stopping).
        """
        if grace is not None:
            self.grace = grace
        self.remove_from_api = remove_from_api
        self.deleting.set()

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Step the pod until it is done, then report the final status."""
        try:
            self.report()
            while self.stage != "done" and not self.deleting.is_set():
                if self._step():
                    self.report()
                self.deleting.wait(_TICK)
            if self.deleting.is_set():
                self._shutdown()
        except Exception:
            log.exception("pod %s: worker failed", self.pod["metadata"]["name"])
            self.message = "test-bed node agent error (see its log)"
            self._shutdown()
        finally:
            self.report()
            if self.on_done is not None:
                self.on_done(self)

    def _step(self) -> bool:
        changed = self._poll()
        if self.stage == "init":
            changed |= self._step_init()
        if self.stage == "main":
            changed |= self._step_main()
        if self.stage == "stopping":
            self._stop_sidecars()
            self.stage, changed = "done", True
        return changed

    def _poll(self) -> bool:
        changed = False
        for run in [*self.inits, *self.mains]:
            if run.state == "waiting" and run.due() and run.restart_count and not run.final:
                changed |= self._launch(run)
            if run.poll():
                self._after_exit(run)
                changed = True
            probe = self.probes.get(run.name)
            if probe is not None and run.state == "running":
                changed |= probe.step()
        return changed

    # --- stages ---------------------------------------------------------------------------
    def _step_init(self) -> bool:
        changed = False
        while self.init_index < len(self.inits):
            run = self.inits[self.init_index]
            if run.state == "waiting" and run.due() and run.restart_count == 0:
                changed |= self._launch(run)
            finished = run.kind == "init" and run.state == "terminated" and run.final
            started = run.kind == "sidecar" and run.state == "running"
            if not (finished or started) or self.stage != "init":
                return changed
            self.init_index += 1
        self.stage, self.phase = "main", "Running"
        return True

    def _step_main(self) -> bool:
        changed = False
        for run in self.mains:
            if run.state == "waiting" and run.due() and run.restart_count == 0:
                changed |= self._launch(run)
        if all(run.final for run in self.mains):
            failed = any((run.terminated or {}).get("exitCode") != 0 for run in self.mains)
            self.phase = "Failed" if failed else "Succeeded"
            self.stage, changed = "stopping", True
        return changed

    def _after_exit(self, run: containers.ContainerRun) -> None:
        """Decide, as the kubelet would, whether an exited container runs again."""
        code = (run.terminated or {}).get("exitCode", 1)
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if run.kind == "sidecar":
            restart = self.stage in ("init", "main")
        elif run.kind == "init":
            restart = policy != "Never" and code != 0
        elif policy == "Always":
            restart = True
        else:
            restart = policy == "OnFailure" and code != 0
        if restart:
            delay = min(self.context.backoff_max, self.context.backoff_base * 2**run.restart_count)
            run.schedule_restart(delay)
            return
        run.final = True
        if run.kind == "init" and code != 0:
            self.phase, self.stage = "Failed", "stopping"

    def _stop_sidecars(self) -> None:
        for run in reversed(self.inits):
            if run.kind == "sidecar":
                run.terminate(self.grace)

    def _shutdown(self) -> None:
        """Stop everything (main containers first, sidecars last, in reverse order)."""
        for run in [*self.mains, *reversed(self.inits)]:
            run.terminate(self.grace)
        if self.phase not in ("Succeeded", "Failed"):
            self.phase = "Failed"
        self.stage = "done"

    # --- starting a container -----------------------------------------------------------
    def _launch(self, run: containers.ContainerRun) -> bool:
        """Start ``run``, or leave it waiting with the kubelet's reason when it cannot."""
        try:
            argv, env, cwd, probe_argv = self._process_spec(run)
        except images.UnknownImageError as error:
            run.wait("ErrImagePull", str(error), _RETRY_CONFIG)
            return True
        except containerenv.ContainerConfigError as error:
            run.wait("CreateContainerConfigError", str(error), _RETRY_CONFIG)
            return True
        run.start(argv, env, cwd)
        probe = probes.exec_probe(run.spec, probe_argv, env, cwd)
        if probe is None:
            self.probes.pop(run.name, None)
        else:
            self.probes[run.name] = probe
        if run.state == "terminated":
            self._after_exit(run)
        elif run.proc is not None:
            # Containers share the host's PID namespace; this is how a sidecar that watches
            # a sibling (shareProcessNamespace) finds its process group.
            pids = self.directory / "pids"
            pids.mkdir(exist_ok=True)
            (pids / run.name).write_text(f"{run.proc.pid}\n")
        return True

    def _process_spec(
        self, run: containers.ContainerRun
    ) -> tuple[list[str], dict[str, str], Path, list[str]]:
        """The process (argv, environment, working directory) and its readiness probe argv."""
        runtime = images.resolve(str(run.spec.get("image", "")))
        if self.volume_dirs is None:
            sources = volumes.Sources(
                self.context.api.lookup, self.context.api.service_account_token
            )
            self.volume_dirs = volumes.prepare_volumes(self.pod, self.directory, sources)
        mounts = containerenv.mounts_for(run.spec, self.volume_dirs)
        mounts.append(containerenv.Mount(run.termination_path, run.termination_file))
        base = self._base_env(run, runtime)
        env = containerenv.container_env(self.pod, run.spec, self.context.api.lookup, base)
        # Only what the pod itself sets is rewritten: the agent's own values (PATH to this
        # checkout's virtual environment, TMPDIR) are host paths already.
        env = {
            key: value if base.get(key) == value else containerenv.rewrite(value, mounts)
            for key, value in env.items()
        }
        env.update(containerenv.mount_env(mounts))
        env["TESTBED_TERMINATION_MESSAGE_PATH"] = str(run.termination_file)
        env.update(self._kubeconfig_env(mounts))
        raw = images.argv_for(runtime, run.spec.get("command") or [], run.spec.get("args") or [])
        argv = [containerenv.rewrite(containerenv.expand(a, env), mounts) for a in raw]
        probe = ((run.spec.get("readinessProbe") or {}).get("exec") or {}).get("command") or []
        probe_argv = [containerenv.rewrite(containerenv.expand(a, env), mounts) for a in probe]
        working = run.spec.get("workingDir")
        cwd = Path(containerenv.rewrite(working, mounts)) if working else run.directory
        cwd.mkdir(parents=True, exist_ok=True)
        return argv, env, cwd, probe_argv

    def _base_env(self, run: containers.ContainerRun, runtime: images.Runtime) -> dict[str, str]:
        """What every container starts from, before its own ``env``."""
        meta = self.pod["metadata"]
        server = self.context.api.server.removeprefix("https://")
        host, _, port = server.partition(":")
        tmp = self.directory / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": runtime.path_value(),
            "HOSTNAME": str(meta["name"]),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "TMPDIR": str(tmp),
            "TESTBED_POD_DIR": str(self.directory),
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port or "443",
        }
        index = (meta.get("annotations") or {}).get("batch.kubernetes.io/job-completion-index")
        if index is not None:
            env["JOB_COMPLETION_INDEX"] = str(index)
        return env

    def _kubeconfig_env(self, mounts: list[containerenv.Mount]) -> dict[str, str]:
        """``KUBECONFIG`` for containers that mount the service-account token directory."""
        for mount in mounts:
            if mount.path == _SERVICE_ACCOUNT_DIR and (mount.host / "token").exists():
                path = kubeconfig_pod.write(self.directory, self.context.api.server, mount.host)
                return {"KUBECONFIG": str(path)}
        return {}

    # --- status ---------------------------------------------------------------------------
    def report(self) -> None:
        """Write the pod's status; failures are logged (the next change retries)."""
        view = podstatus.PodView(
            self.pod,
            self.phase,
            self.inits,
            self.mains,
            initialized=self.stage != "init",
            start_time=self.start_time,
            conditions=self.conditions,
            message=self.message,
            readiness={name: probe.ready for name, probe in self.probes.items()},
        )
        meta = self.pod["metadata"]
        try:
            self.context.api.patch_pod_status(
                meta["namespace"], meta["name"], podstatus.pod_status(view)
            )
        except Exception as error:  # the API may be going away; the pod goes on
            log.warning("pod %s: status update failed: %s", meta["name"], error)

    def sleep_until_done(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the worker to end; True if it has."""
        self.join(timeout)
        return not self.is_alive()
