"""bench_replay.py's operator mode: the same night fed to the operator on the test bed.

``shutterline schedule feed``'s `shutterline_operator.feed.feed` creates the Visits ahead of
their times; the operator (a process, as its service account) makes the Jobs; the node agent
runs the pods (this checkout's ``shutterline pod precache|run`` and ``shutterline relay``);
the camera lands the raws. Each detector's figures come from its pipeline container's
termination message in the pod status, as the operator reads them.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import Any

from tests.e2e import backbone as backbone_mod
from tests.e2e import operatorbed
from tests.e2e.test_testbed_k8s import wait_for
from tests.testbed.k8s import cluster

from shutterline.simulate import play

__all__ = ["OperatorBed", "replay"]

IMAGE = "registry.example/shutterline/shutterline-pipeline:dev"
NAMESPACE = "prompt"
_TERMINAL = ("Succeeded", "PartiallySucceeded", "Failed", "TimedOut", "Rejected")


class OperatorBed:
    """The Kubernetes test bed with the CRDs, RBAC and a running operator."""

    def __init__(self, work: Path) -> None:
        self.bed = cluster.start(work / "k8s")
        root = operatorbed.ROOT
        self.bed.kubectl("apply", "-f", str(root / "crds"))
        for crd in ("visits.shutterline.io", "promptconfigs.shutterline.io"):
            established = functools.partial(operatorbed._established, self.bed, crd)
            wait_for(established, 120, f"CRD {crd} established")
        self.bed.kubectl("create", "namespace", operatorbed.SYSTEM_NS, check=False)
        self.bed.kubectl("apply", "-f", str(root / "operator" / "rbac" / "rbac.yaml"))
        kubeconfig = operatorbed._service_account_kubeconfig(self.bed, work / "op-kubeconfig")
        self.operator = operatorbed.OperatorProcess(kubeconfig, work / "operator.log")
        self.operator.start(timeout=180)

    def stop(self) -> None:
        self.operator.stop()
        self.bed.stop()


def _configure(bed: cluster.Cluster, bb: backbone_mod.Backbone, kafka: dict[str, str]) -> None:
    bed.kubectl("create", "namespace", NAMESPACE, check=False)
    credentials = {k: v for k, v in bb.env().items() if k != "SHUTTERLINE_REPO"}
    operatorbed.apply(
        bed,
        _secret("s3", credentials),
        _secret("apdb", {"url": bb.new_apdb()}),
    )
    spec: dict[str, Any] = {
        "images": {"pipeline": IMAGE},
        "backbone": {"repo": bb.repo, "credentialsSecret": "s3"},
        "apdb": {"secret": {"name": "apdb", "key": "url"}},
        "rawWaitSeconds": 600,
        "scratch": {"sizeLimit": "4Gi"},
    }
    if kafka:
        spec["kafka"] = {
            "bootstrap": kafka["SHUTTERLINE_KAFKA_BOOTSTRAP"],
            "alertTopic": kafka["SHUTTERLINE_ALERT_TOPIC"],
            "metricsTopic": kafka["SHUTTERLINE_METRICS_TOPIC"],
            "relayGiveUpSeconds": 60,
        }
    operatorbed.apply(bed, operatorbed.make_config(NAMESPACE, **spec))


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "stringData": data,
    }


def _messages(bed: cluster.Cluster, name: str, detectors: list[int]) -> dict[int, Any]:
    """Each detector's last pipeline termination message (JSON), from the pod statuses."""
    import json

    found: dict[int, Any] = {}
    pods = operatorbed.items(bed, "pods", NAMESPACE, f"shutterline.io/visit={name}")
    for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"]):
        index = int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
        for status in pod.get("status", {}).get("containerStatuses") or []:
            done = (status.get("state") or {}).get("terminated") or {}
            if status["name"] == "pipeline" and done.get("message"):
                found[detectors[index]] = json.loads(done["message"])
    return found


def replay(
    ob: OperatorBed,
    bb: backbone_mod.Backbone,
    clock: play.ReplayClock,
    lead: float,
    kafka: dict[str, str],
) -> list[tuple[int, int, dict[str, Any], float]]:
    """Feed and play the night; ``(visit, detector, termination message, landed)`` each."""
    from kubernetes import client, config

    from shutterline_operator import feed

    _configure(ob.bed, bb, kafka)
    api_client = config.new_client_from_config(str(ob.bed.kubeconfig))
    api = client.CustomObjectsApi(api_client)
    feeder = threading.Thread(
        target=feed.feed,
        args=(api, bb.visits, bb.instrument, bb.raw_uri, clock, lead, NAMESPACE, 600.0),
    )
    feeder.start()
    landings = play.play(bb.night, bb.visits, bb.raw_uri, clock)
    feeder.join()
    landed = {(x.visit, x.detector): x.landed for x in landings}
    out = []
    for entry in bb.visits:
        name, detectors = f"visit-{entry['visit']}", [int(d) for d in entry["detectors"]]
        operatorbed.wait_phase(ob.bed, name, NAMESPACE, _TERMINAL, 600)
        time.sleep(1.0)  # the last pod's status reaches the API server
        messages = _messages(ob.bed, name, detectors)
        for detector in detectors:
            key = (int(entry["visit"]), detector)
            out.append((*key, messages.get(detector, {}), landed[key]))
    api_client.close()
    return out
