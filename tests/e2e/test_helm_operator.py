"""``helm install`` of the whole chart on the test bed: its operator reconciles the example
Visit to ``Succeeded`` and the workers' relays publish the visit's alerts to its Kafka.

Everything runs from the rendered manifests: the operator Deployment (the operator image's
entry point, as its service account, bound by the chart's RBAC to the workers namespace the
chart made, restricted Pod Security enforced by the API server), the PromptConfig filled from
values, the three-node Kafka and its topic Job. The backbone night (S3 + PostgreSQL), the
schema registry and the trace receiver are the test bed's, named in values as a site's own.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e import helm_release
from tests.testbed import procs
from tests.testbed.k8s import cluster, images

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.kafka,
    pytest.mark.s3,
    pytest.mark.postgres,
    pytest.mark.slow,
]

RELEASE = "op"
IMAGES = "registry.example/shutterline"


def chart_values(release: helm_release.Release, backbone: Any, registry: Any, otlp: Any) -> dict:
    return release.values(
        {
            "namespaces": {"create": True},
            "operator": {
                "enabled": True,
                "image": {"repository": f"{IMAGES}/shutterline-operator", "tag": "dev"},
                # The operator binds all addresses of the host here: a port of its own.
                "port": procs.free_port(),
                "statusIntervalSeconds": 0.3,
            },
            "pipeline": {"image": {"repository": f"{IMAGES}/shutterline-pipeline", "tag": "dev"}},
            "backbone": {
                "repo": backbone.repo,
                "credentialsSecret": "pipeline-s3",
                "apdbSecret": "pipeline-apdb",
            },
            "schemaRegistry": {"enabled": False, "url": registry.url},
            "telemetry": {"otlpEndpoint": otlp.endpoint},
            "instruments": {
                "SimDECam": {
                    "retries": {"backoffLimitPerIndex": 2},
                    "rawWaitSeconds": 120,
                    "scratch": {"sizeLimit": "2Gi"},
                    "ttlSecondsAfterFinished": 600,
                }
            },
        }
    )


@pytest.fixture(scope="module")
def installed(
    k8s_cluster: cluster.Cluster,
    backbone: Any,
    schema_registry: Any,
    otlp_receiver: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[helm_release.Release]:
    """The chart with its operator and Kafka; the Secrets the PromptConfig names."""
    namespace = helm_release.create_namespace(k8s_cluster, "shutterline")
    workers = f"prompt-{uuid.uuid4().hex[:6]}"  # made by the chart
    release = helm_release.Release(
        k8s_cluster, RELEASE, namespace, tmp_path_factory.mktemp("helm-op"), workers
    )
    release.install(chart_values(release, backbone, schema_registry, otlp_receiver))
    credentials = {k: v for k, v in backbone.env().items() if k != "SHUTTERLINE_REPO"}
    secrets = [
        {"metadata": {"name": "pipeline-s3"}, "stringData": credentials},
        {"metadata": {"name": "pipeline-apdb"}, "stringData": {"url": backbone.new_apdb()}},
    ]
    for secret in secrets:
        body = {"apiVersion": "v1", "kind": "Secret", **secret}
        k8s_cluster.kubectl("apply", "-n", workers, "-f", "-", stdin=json.dumps(body))
    yield release
    release.helm("uninstall", RELEASE, "--wait", "--timeout", "3m")
    for name in (namespace, workers):
        k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def example_visit(backbone: Any, namespace: str) -> dict[str, Any]:
    """examples/visit.yaml, pointed at the first visit of the backbone night."""
    example = yaml.safe_load((images.REPO_ROOT / "examples" / "visit.yaml").read_text())
    body = copy.deepcopy(example)
    body["metadata"] = {"name": "example", "namespace": namespace}
    visit = int(backbone.visits[0]["visit"])
    body["spec"].update(backbone.visit_spec(visit, deadlineSeconds=300))
    return dict(body)


def visit_status(release: helm_release.Release) -> dict[str, Any]:
    out = release.bed.kubectl("get", "visit", "example", "-n", release.workers, "-o", "json")
    return dict(json.loads(out.stdout).get("status") or {})


def wait_phase(release: helm_release.Release, phases: tuple[str, ...], timeout: float) -> dict:
    def reached() -> dict[str, Any] | None:
        status = visit_status(release)
        return status if status.get("phase") in phases else None

    try:
        return dict(helm_release.wait_for(reached, timeout, f"the Visit to reach {phases}"))
    except AssertionError:
        pods = release.bed.kubectl("get", "pods", "-A", "-o", "wide").stdout
        raise AssertionError(f"status {visit_status(release)}\n{pods}") from None


def alert_keys(bootstrap: str, expected: int, timeout: float = 90) -> set[bytes]:
    """Distinct keys in the alert topic, read from the beginning."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(["alerts"])
    keys: set[bytes] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(keys) < expected and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and not message.error():
                keys.add(bytes(message.key() or b""))
    finally:
        consumer.close()
    return keys


def test_chart_operator_reconciles_the_example_visit_and_alerts_reach_the_charts_kafka(
    installed: helm_release.Release, backbone: Any
) -> None:
    bed = installed.bed
    operator = installed.pods("app.kubernetes.io/component=operator")
    assert [p["status"]["phase"] for p in operator] == ["Running"]
    configs = json.loads(
        bed.kubectl("get", "promptconfigs", "-n", installed.workers, "-o", "json").stdout
    )["items"]
    assert [c["metadata"]["name"] for c in configs] == ["simdecam"]
    body = example_visit(backbone, installed.workers)
    bed.kubectl("apply", "-f", "-", stdin=json.dumps(body))
    wait_phase(installed, ("WaitingForRaws", "Processing"), 300)
    visit = int(body["spec"]["visitId"])
    for detector in body["spec"]["detectors"]:
        backbone.land(visit, detector)
    try:
        status = wait_phase(
            installed, ("Succeeded", "PartiallySucceeded", "Failed", "TimedOut"), 420
        )
    finally:
        for detector in body["spec"]["detectors"]:
            backbone.withdraw(visit, detector)
    assert status["phase"] == "Succeeded", status
    assert status["alerts"] > 0, status
    bootstrap = f"{RELEASE}-shutterline-kafka-headless.{installed.namespace}.svc.cluster.local:9092"
    keys = alert_keys(bootstrap, status["alerts"])
    assert len(keys) == status["alerts"], (len(keys), status)
