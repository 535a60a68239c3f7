"""Pod status as the kubelet reports it, built from the agent's container records.

Pure functions over plain data (`containers.ContainerRun` records and the pod dict), plus the
`Conditions` clock that keeps each condition's ``lastTransitionTime`` stable until its status
actually changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.testbed.k8s import containerenv, containers, kubeapi

__all__ = ["Conditions", "PodView", "container_status", "pod_status"]

# Conditions the agent owns; others (PodScheduled from the scheduler, DisruptionTarget from
# controllers) are carried over from the pod as they are.
_OWN = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


def _state(run: containers.ContainerRun) -> dict[str, Any]:
    if run.state == "running":
        return {"running": {"startedAt": run.started_at}}
    if run.state == "terminated" and run.terminated is not None:
        return {"terminated": dict(run.terminated)}
    waiting: dict[str, Any] = {"reason": run.reason or "ContainerCreating"}
    if run.message:
        waiting["message"] = run.message
    return {"waiting": waiting}


def container_status(run: containers.ContainerRun, probed: bool | None = None) -> dict[str, Any]:
    """The ``containerStatuses`` entry of ``run``: ready while it runs, and, if it has an exec
    readiness probe (``probed`` is its verdict), once that probe passes."""
    running = run.state == "running"
    status: dict[str, Any] = {
        "name": run.name,
        "image": run.spec.get("image", ""),
        "imageID": f"testbed://{run.spec.get('image', '')}",
        "ready": running and probed is not False,
        "started": running,
        "restartCount": run.restart_count,
        "state": _state(run),
        "lastState": {"terminated": dict(run.last_terminated)} if run.last_terminated else {},
    }
    if run.container_id():
        status["containerID"] = run.container_id()
    return status


@dataclass
class Conditions:
    """The agent's pod conditions with transition times that change only with the status."""

    since: dict[str, tuple[str, str]] = field(default_factory=dict)

    def condition(self, kind: str, true: bool, reason: str = "") -> dict[str, Any]:
        """The condition ``kind`` with status ``true``, stamped when that status began."""
        status = "True" if true else "False"
        previous = self.since.get(kind)
        if previous is None or previous[0] != status:
            self.since[kind] = (status, kubeapi.now())
        entry = {"type": kind, "status": status, "lastTransitionTime": self.since[kind][1]}
        if reason and not true:
            entry["reason"] = reason
        return entry


@dataclass
class PodView:
    """What the status is computed from: the pod and the agent's records of it."""

    pod: dict[str, Any]
    phase: str
    inits: list[containers.ContainerRun]
    mains: list[containers.ContainerRun]
    initialized: bool
    start_time: str
    conditions: Conditions
    message: str = ""
    readiness: dict[str, bool] = field(default_factory=dict)

    def ready(self, run: containers.ContainerRun) -> bool:
        """Whether ``run`` counts as ready: running, and its probe (if any) passing."""
        return run.state == "running" and self.readiness.get(run.name, True)


def _conditions(view: PodView) -> list[dict[str, Any]]:
    terminal = view.phase in ("Succeeded", "Failed")
    sidecars_up = all(view.ready(run) for run in view.inits if run.kind == "sidecar")
    mains_up = all(view.ready(run) for run in view.mains)
    ready = view.initialized and mains_up and sidecars_up and not terminal
    reason = "PodCompleted" if terminal else "ContainersNotReady"
    clock = view.conditions
    own = [
        clock.condition("PodReadyToStartContainers", True),
        clock.condition("Initialized", view.initialized, "ContainersNotInitialized"),
        clock.condition("ContainersReady", ready, reason),
        clock.condition("Ready", ready, reason),
    ]
    others = [
        c for c in view.pod.get("status", {}).get("conditions") or [] if c.get("type") not in _OWN
    ]
    return others + own


def pod_status(view: PodView) -> dict[str, Any]:
    """The whole ``status`` the agent writes for the pod (a merge patch replaces lists)."""
    ip = containerenv.POD_IP
    status: dict[str, Any] = {
        "phase": view.phase,
        "hostIP": ip,
        "hostIPs": [{"ip": ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": view.start_time,
        "conditions": _conditions(view),
        "initContainerStatuses": [
            container_status(run, view.readiness.get(run.name)) for run in view.inits
        ],
        "containerStatuses": [
            container_status(run, view.readiness.get(run.name)) for run in view.mains
        ],
        "qosClass": view.pod.get("status", {}).get("qosClass", "BestEffort"),
    }
    if view.message:
        status["message"] = view.message
    return status
