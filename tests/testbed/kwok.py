"""KWOK (``sigs.k8s.io/kwok``): fake nodes and simulated pod lifecycles on the test bed.

``ensure_built()`` builds the ``kwok`` controller at `KWOK_VERSION` once from its Go module;
``start(bed, state_dir, nodes=...)`` registers fake Nodes (annotation ``kwok.x-k8s.io/node:
fake``) and runs ``kwok`` against the test bed's API server with the Stages below, so the
scheduler places pods on nodes that cost nothing and their containers "run" for a set time.

KWOK v0.8 ships no built-in behaviour: every transition is a Stage, and these are ours.

Nodes
    ``node-initialize`` fills a new node's status (conditions Ready, addresses, allocatable,
    node info); ``node-heartbeat`` refreshes the conditions' ``lastHeartbeatTime`` every
    `NODE_HEARTBEAT_SECONDS`; KWOK itself renews each node's Lease, which is what the node
    lifecycle controller watches.
Pods (on KWOK nodes only)
    ``pod-start``: bound, no IP yet -> ``Pending``, IPs ``127.0.0.1``, every container waiting.
    ``pod-initialize``: after the init time -> ``Running``: regular init containers
    ``terminated`` (exit 0) one after the other in the kubelet's model collapse into one
    step (KWOK patches a status, it runs nothing); native sidecars (init containers with
    ``restartPolicy: Always``) and main containers ``running`` and ready.
    ``pod-complete``: after the run time, for ``restartPolicy`` Never/OnFailure -> main
    containers terminated with the pod's exit code (0: ``Succeeded``, else ``Failed``),
    sidecars terminated with 0 as after the kubelet's SIGTERM.
    ``pod-terminate``: a deleted pod that has not finished -> ``Failed``, exit 143 (SIGTERM).
    ``pod-remove``: a deleted, finished pod -> deleted (grace period 0), as the kubelet does.

Per-pod overrides are annotations: ``kwok.shutterline.io/init-duration`` and ``run-duration``
(Go durations such as ``1.5s``), ``exit-code`` and ``message`` (the main containers'
``terminated.message``). Probes, restarts and resource use are not simulated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.testbed import builds, procs
from tests.testbed.k8s import cluster, kubeapi

__all__ = [
    "ANNOTATION",
    "KWOK_VERSION",
    "NODE_HEARTBEAT_SECONDS",
    "TAINT_KEY",
    "Kwok",
    "ensure_built",
    "fake_node",
    "node_stages",
    "pod_stages",
    "start",
]

KWOK_MODULE = "sigs.k8s.io/kwok"
KWOK_VERSION = "v0.8.0"
# What KWOK's --manage-nodes-with-annotation-selector picks, and the taint that keeps pods
# meant for the node agent off the fake nodes (pods that tolerate it may land there).
ANNOTATION = "kwok.x-k8s.io/node"
TAINT_KEY = "kwok.x-k8s.io/node"
NODE_LABEL = "shutterline.io/node-pool"
NODE_HEARTBEAT_SECONDS = 30
_PREFIX = "kwok.shutterline.io"


def ensure_built(version: str = KWOK_VERSION) -> Path:
    """The ``kwok`` binary of ``version``, built once from its Go module (a few minutes)."""
    return builds.go_build("kwok", f"{KWOK_MODULE}/cmd/kwok", version, "kwok")


def _stage(
    name: str,
    kind: str,
    expressions: list[dict[str, Any]],
    next_step: dict[str, Any],
    delay: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "resourceRef": {"apiGroup": "v1", "kind": kind},
        "selector": {"matchExpressions": expressions},
        "next": next_step,
    }
    if delay is not None:
        spec["delay"] = delay
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": spec,
    }


def _exists(key: str, present: bool = True) -> dict[str, Any]:
    return {"key": key, "operator": "Exists" if present else "DoesNotExist"}


def _within(key: str, values: list[str], inside: bool = True) -> dict[str, Any]:
    return {"key": key, "operator": "In" if inside else "NotIn", "values": values}


def _delay(milliseconds: int, annotation: str) -> dict[str, Any]:
    """A delay of ``milliseconds`` unless the pod's annotation ``annotation`` names one."""
    expression = f'.metadata.annotations["{_PREFIX}/{annotation}"]'
    return {
        "durationMilliseconds": milliseconds,
        "durationFrom": {"jq": {"expression": expression}},
    }


_NODE_INITIALIZE = """\
{{ $now := Now }}
conditions:
{{- range $type := list "Ready" "MemoryPressure" "DiskPressure" "PIDPressure" }}
- type: {{ $type }}
  status: {{ if eq $type "Ready" }}"True"{{ else }}"False"{{ end }}
  reason: {{ if eq $type "Ready" }}KubeletReady{{ else }}KubeletHasSufficientResources{{ end }}
  message: simulated by kwok
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
{{- end }}
addresses:
- type: InternalIP
  address: 127.0.0.1
- type: Hostname
  address: {{ .metadata.name | Quote }}
allocatable: {{ .status.capacity | toJson }}
daemonEndpoints:
  kubeletEndpoint:
    Port: 0
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: kwok-%(version)s
  kubeProxyVersion: kwok-%(version)s
  containerRuntimeVersion: kwok
  osImage: kwok
  kernelVersion: kwok
  machineID: ""
  systemUUID: ""
  bootID: ""
phase: Running
"""

# Same conditions, fresh heartbeat; transition times kept.
_NODE_HEARTBEAT = """\
{{ $now := Now }}
conditions:
{{- range .status.conditions }}
- type: {{ .type | Quote }}
  status: {{ .status | Quote }}
  reason: {{ .reason | Quote }}
  message: {{ .message | Quote }}
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ .lastTransitionTime | Quote }}
{{- end }}
"""


def node_stages(heartbeat_seconds: int = NODE_HEARTBEAT_SECONDS) -> list[dict[str, Any]]:
    """Stages that bring a fake node up and keep its conditions fresh."""
    ready = '.status.conditions.[] | select(.type == "Ready") | .status'
    initialize = _stage(
        "node-initialize",
        "Node",
        [_exists(".metadata.deletionTimestamp", False), _within(ready, ["True"], False)],
        {"statusTemplate": _NODE_INITIALIZE % {"version": KWOK_VERSION}},
    )
    heartbeat = _stage(
        "node-heartbeat",
        "Node",
        [_exists(".metadata.deletionTimestamp", False), _within(ready, ["True"])],
        {"statusTemplate": _NODE_HEARTBEAT},
        {"durationMilliseconds": heartbeat_seconds * 1000},
    )
    return [initialize, heartbeat]


def _conditions(initialized: str, ready: str, reason: str = "") -> str:
    lines = ["conditions:"]
    values = [("PodReadyToStartContainers", "True"), ("Initialized", initialized)]
    values += [("ContainersReady", ready), ("Ready", ready)]
    for kind, status in values:
        lines += [
            f"- type: {kind}",
            f'  status: "{status}"',
            f"  reason: {reason!r}" if reason and status == "False" else "  reason: ''",
            "  lastProbeTime: null",
            "  lastTransitionTime: {{ $now | Quote }}",
        ]
    return "\n".join(lines) + "\n"


def _statuses(field_name: str, containers: str, state: str) -> str:
    """A ``containerStatuses``-like list for ``.spec.<containers>`` in one ``state`` block.

    ``state`` is template text, indented two spaces, that may use ``$sidecar``, ``$started``
    (when the container started, kept from its previous status) and ``$finished``.
    """
    return (
        f"{{{{ if .spec.{containers} }}}}\n{field_name}:\n"
        f'{{{{- $olds := dig "status" "{field_name}" (list) $ }}}}\n'
        f"{{{{- range $i, $c := .spec.{containers} }}}}\n"
        "{{- $old := dict }}{{ if lt $i (len $olds) }}{{ $old = index $olds $i }}{{ end }}\n"
        '{{- $started := dig "state" "running" "startedAt"'
        ' (dig "state" "terminated" "startedAt" $now $old) $old }}\n'
        '{{- $finished := dig "state" "terminated" "finishedAt" $now $old }}\n'
        '{{- $sidecar := eq (default "" .restartPolicy) "Always" }}\n'
        "- name: {{ .name | Quote }}\n"
        "  image: {{ .image | Quote }}\n"
        "  imageID: ''\n"
        '  containerID: {{ printf "kwok://%s/%s" $.metadata.uid .name | Quote }}\n'
        "  restartCount: 0\n" + state + "{{- end }}\n{{ end }}\n"
    )


_WAITING = """\
  ready: false
  started: false
  state:
    waiting:
      reason: PodInitializing
"""

_RUNNING = """\
  ready: true
  started: true
  state:
    running:
      startedAt: {{ $started | Quote }}
"""

_COMPLETED = """\
  ready: false
  started: false
  state:
    terminated:
      exitCode: 0
      reason: Completed
      startedAt: {{ $started | Quote }}
      finishedAt: {{ $finished | Quote }}
"""


def _terminated(code: str, message: str) -> str:
    """A terminated state; ``code`` and ``message`` are template expressions."""
    return f"""\
  ready: false
  started: false
  state:
    terminated:
      exitCode: {{{{ {code} }}}}
      reason: {{{{ if eq ({code} | toString) "0" }}}}Completed{{{{ else }}}}Error{{{{ end }}}}
      message: {{{{ {message} | Quote }}}}
      startedAt: {{{{ $started | Quote }}}}
      finishedAt: {{{{ $now | Quote }}}}
"""


def _sidecar_or(sidecar: str, regular: str) -> str:
    """A container state that depends on whether the init container is a native sidecar."""
    return "  {{- if $sidecar }}\n" + sidecar + "  {{- else }}\n" + regular + "  {{- end }}\n"


_HEAD = (
    "{{ $now := Now }}"
    f'{{{{ $code := dig "metadata" "annotations" "{_PREFIX}/exit-code" "0" . }}}}'
    f'{{{{ $message := dig "metadata" "annotations" "{_PREFIX}/message" "" . }}}}\n'
)


def _pod_start() -> str:
    return (
        _HEAD
        + "phase: Pending\nhostIP: 127.0.0.1\npodIP: 127.0.0.1\n"
        + "hostIPs: [{ip: 127.0.0.1}]\npodIPs: [{ip: 127.0.0.1}]\n"
        + "startTime: {{ $now | Quote }}\n"
        + _conditions("False", "False", "ContainersNotInitialized")
        + _statuses("initContainerStatuses", "initContainers", _WAITING)
        + _statuses("containerStatuses", "containers", _WAITING)
    )


def _pod_initialize() -> str:
    return (
        _HEAD
        + "phase: Running\n"
        + _conditions("True", "True")
        + _statuses("initContainerStatuses", "initContainers", _sidecar_or(_RUNNING, _COMPLETED))
        + _statuses("containerStatuses", "containers", _RUNNING)
    )


def _pod_finish(code: str, message: str, phase: str) -> str:
    # Sidecars end with 0, as after the kubelet's SIGTERM once the main containers are done.
    sidecars = _sidecar_or(_terminated("0", '""'), _COMPLETED)
    return (
        _HEAD
        + f"phase: {phase}\n"
        + _conditions("True", "False", "PodCompleted")
        + _statuses("initContainerStatuses", "initContainers", sidecars)
        + _statuses("containerStatuses", "containers", _terminated(code, message))
    )


def pod_stages(init_ms: int = 200, run_ms: int = 2000) -> list[dict[str, Any]]:
    """Stages of a pod's life on a KWOK node (see the module docstring).

    Parameters
    ----------
    init_ms
        Default time from the pod's start to its main containers running (the init
        containers' share); a pod's ``kwok.shutterline.io/init-duration`` overrides it.
    run_ms
        Default time the main containers run; ``kwok.shutterline.io/run-duration`` overrides.
    """
    alive = _exists(".metadata.deletionTimestamp", False)
    deleted = _exists(".metadata.deletionTimestamp")
    finished = ["Succeeded", "Failed"]
    succeeded = '{{ if eq ($code | toString) "0" }}Succeeded{{ else }}Failed{{ end }}'
    return [
        _stage(
            "pod-start",
            "Pod",
            [alive, _exists(".status.podIP", False)],
            {"statusTemplate": _pod_start()},
        ),
        _stage(
            "pod-initialize",
            "Pod",
            [alive, _exists(".status.podIP"), _within(".status.phase", ["Pending"])],
            {"statusTemplate": _pod_initialize()},
            _delay(init_ms, "init-duration"),
        ),
        _stage(
            "pod-complete",
            "Pod",
            [
                alive,
                _within(".status.phase", ["Running"]),
                _within(".spec.restartPolicy", ["Never", "OnFailure"]),
            ],
            {"statusTemplate": _pod_finish("$code", "$message", succeeded)},
            _delay(run_ms, "run-duration"),
        ),
        _stage(
            "pod-terminate",
            "Pod",
            [deleted, _within(".status.phase", finished, False)],
            {"statusTemplate": _pod_finish("143", '"terminated by deletion"', "Failed")},
        ),
        _stage(
            "pod-remove", "Pod", [deleted, _within(".status.phase", finished)], {"delete": True}
        ),
    ]


def fake_node(name: str, capacity: dict[str, str], taint: bool = True) -> dict[str, Any]:
    """A Node object KWOK manages (``capacity``: cpu, memory, pods)."""
    spec: dict[str, Any] = {}
    if taint:
        spec["taints"] = [{"key": TAINT_KEY, "value": "fake", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {ANNOTATION: "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                NODE_LABEL: "kwok",
            },
        },
        "spec": spec,
        "status": {"capacity": capacity, "allocatable": capacity},
    }


@dataclass
class Kwok:
    """A running ``kwok`` controller and the fake nodes it simulates."""

    process: procs.ManagedProcess
    kubeconfig: Path
    node_names: list[str]
    tainted: bool
    config: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def toleration(self) -> dict[str, str]:
        """The toleration a pod needs to be placed on the (tainted) fake nodes."""
        return {"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}

    def node_selector(self) -> dict[str, str]:
        """The node labels that select only the fake nodes."""
        return {NODE_LABEL: "kwok"}

    def env(self) -> dict[str, str]:
        """Nothing to export: KWOK acts through the API server only."""
        return {}

    def stop(self) -> None:
        """Stop the controller and delete the fake nodes (pods on them go with the GC)."""
        self.process.stop()
        api = kubeapi.NodeApi(self.kubeconfig)
        try:
            for name in self.node_names:
                try:
                    api.request("DELETE", f"/api/v1/nodes/{name}")
                except Exception:  # the API server may already be gone at session end
                    break
        finally:
            api.close()


def _node_ready(api: kubeapi.NodeApi, name: str) -> bool:
    node = api.get_node(name) or {}
    conditions = node.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _configuration() -> dict[str, Any]:
    """KWOK's own options, every one spelled out: a configuration file's are not defaulted."""
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "cidr": "10.0.0.0/24",
            "podPlayStageParallelism": 16,
            "nodePlayStageParallelism": 4,
            "nodeLeaseParallelism": 4,
            "podsOnNodeSyncParallelism": 2,
            "enablePodsOnNodeSyncListPager": True,
            "enablePodsOnNodeSyncStreamWatch": False,
            "enableDebuggingHandlers": False,
            "enableProfilingHandler": False,
            "enableContentionProfiling": False,
        },
    }


def _register_nodes(
    bed: cluster.Cluster,
    process: procs.ManagedProcess,
    names: list[str],
    amounts: dict[str, str],
    taint: bool,
    timeout: float,
) -> None:
    """Create the fake nodes KWOK manages (those missing) and wait until all are Ready."""
    api = kubeapi.NodeApi(bed.kubeconfig)
    try:
        for name in names:
            if api.get_node(name) is None:
                api.create_node(fake_node(name, amounts, taint))
        procs.wait_process_ready(
            process,
            lambda: all(_node_ready(api, name) for name in names),
            timeout,
            f"kwok ({len(names)} fake node(s) Ready)",
        )
    finally:
        api.close()


def start(
    bed: cluster.Cluster,
    state_dir: Path,
    nodes: int = 4,
    capacity: dict[str, str] | None = None,
    taint: bool = True,
    init_ms: int = 200,
    run_ms: int = 2000,
    timeout: float = 60.0,
) -> Kwok:
    """Start ``kwok`` against ``bed`` with ``nodes`` fake nodes; return when they are Ready.

    ``capacity`` defaults to 32 CPUs, 256Gi and 1,000 pods per node. ``taint`` keeps pods
    that do not tolerate `TAINT_KEY` off them. ``init_ms``/``run_ms``: see `pod_stages`.
    """
    binary = ensure_built()
    started = time.monotonic()
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "kwok.yaml"
    documents = [_configuration(), *node_stages(), *pod_stages(init_ms, run_ms)]
    config.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    port = procs.free_port()
    argv = [
        str(binary),
        f"--config={config}",
        f"--kubeconfig={bed.kubeconfig}",
        f"--manage-nodes-with-annotation-selector={ANNOTATION}=fake",
        f"--server-address=127.0.0.1:{port}",
        "--node-lease-duration-seconds=40",
        "--v=WARN",
    ]
    log = state_dir / "logs" / "kwok.log"
    process = procs.ManagedProcess("kwok", argv, log, cwd=state_dir).start()
    names = [f"kwok-node-{index}" for index in range(nodes)]
    amounts = capacity or {"cpu": "32", "memory": "256Gi", "pods": "1000"}
    _register_nodes(bed, process, names, amounts, taint, timeout)
    builds.say(f"KWOK {KWOK_VERSION} up in {time.monotonic() - started:.1f} s ({nodes} nodes)")
    return Kwok(process, bed.kubeconfig, names, taint, config)
