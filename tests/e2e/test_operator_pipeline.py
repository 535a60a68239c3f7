"""The operator with the real pipeline pods on the test bed: the shared backbone night in
S3 + PostgreSQL (tests/e2e/backbone.py), the worker's ``shutterline pod precache|run``, the
node agent running every container from this checkout.

Each test uses the night's small detectors (512 x 1024) and its own APDB.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from shutterline.association import apdb as apdb_mod
from shutterline.telemetry import tracing
from shutterline_operator.core import detectors as dets
from tests.e2e import relay_harness
from tests.e2e.operatorbed import (
    ROOT,
    apply,
    items,
    make_config,
    visit_status,
    wait_phase,
)
from tests.e2e.test_testbed_k8s import wait_for
from tests.testbed.k8s import cluster

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.s3,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.slow,
]

Bed = tuple[cluster.Cluster, Any]
IMAGE = "registry.example/shutterline/shutterline-pipeline:dev"


def _has_command(*argv: str) -> bool:
    shutterline = Path(sys.executable).parent / "shutterline"
    done = subprocess.run([str(shutterline), *argv, "--help"], capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def pipeline_ns(
    operator_bed: Bed, prompt_namespace: str, backbone: Any, otlp_receiver: Any
) -> dict[str, Any]:
    """A namespace whose PromptConfig runs the pipeline image against the backbone night."""
    return pipeline_namespace(operator_bed[0], prompt_namespace, backbone, otlp_receiver)


def pipeline_namespace(
    bed: cluster.Cluster, ns: str, backbone: Any, otlp_receiver: Any
) -> dict[str, Any]:
    """Secrets, a fresh APDB and the (not yet applied) PromptConfig of the pipeline image in
    ``ns``: ``{"ns", "apdb", "config"}``."""
    if not _has_command("pod", "run"):
        pytest.fail("`shutterline pod run` is missing: the worker's pod commands are needed")
    apdb = backbone.new_apdb()
    # The APDB exists before visits arrive, as in operations: pods of one visit creating a
    # fresh schema at once race (one of them fails on a table the other just made).
    apdb_mod.open_apdb(apdb, create=True)
    credentials = {k: v for k, v in backbone.env().items() if k != "SHUTTERLINE_REPO"}
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pipeline-s3", "namespace": ns},
            "stringData": credentials,
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "pipeline-apdb", "namespace": ns},
            "stringData": {"url": apdb},
        },
    ]
    apply(bed, *secrets)
    config = make_config(
        ns,
        images={"pipeline": IMAGE},
        backbone={"repo": backbone.repo, "credentialsSecret": "pipeline-s3"},
        apdb={"secret": {"name": "pipeline-apdb", "key": "url"}},
        telemetry={"enabled": _has_command("telemetry"), "otlpEndpoint": otlp_receiver.endpoint},
        retries={"backoffLimitPerIndex": 2},
        rawWaitSeconds=120,
    )
    return {"ns": ns, "apdb": apdb, "config": config}


def with_kafka(config: dict[str, Any], kafka_broker: Any, schema_registry: Any) -> str:
    """Point ``config`` at fresh alert and metrics topics of the test broker; the alert topic."""
    topic = relay_harness.unique_topic("alerts")
    relay_harness.create_topics(kafka_broker.bootstrap, topic, f"{topic}-metrics")
    config["spec"]["kafka"] = {
        "bootstrap": kafka_broker.bootstrap,
        "alertTopic": topic,
        "metricsTopic": f"{topic}-metrics",
        "schemaRegistryUrl": schema_registry.url,
        "relayGiveUpSeconds": 60,
    }
    return topic


def _visit(backbone: Any, ns: str, name: str, visit: int, **spec: Any) -> dict[str, Any]:
    """examples/visit.yaml, pointed at one visit of the backbone night."""
    example = yaml.safe_load((ROOT / "examples" / "visit.yaml").read_text())
    body = copy.deepcopy(example)
    body["metadata"] = {"name": name, "namespace": ns}
    body["spec"].update(backbone.visit_spec(visit, deadlineSeconds=240, **spec))
    return dict(body)


def _spool(bed: cluster.Cluster, pod: dict[str, Any]) -> Path:
    return bed.pod_dir(pod) / "volumes" / "scratch" / "spool"


def _pods(bed: cluster.Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    return items(bed, "pods", ns, f"shutterline.io/visit={name}")


def _keys_on(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> set[bytes | None]:
    """Keys of every message on ``topic`` (3 partitions) once ``expected`` have arrived."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    keys: list[bytes | None] = []

    def enough() -> bool:
        keys.extend(m.key() for m in consumer.consume(100, 0.5) if not m.error())
        return len(keys) >= expected

    try:
        wait_for(enough, timeout, f"{expected} alerts on {topic}")
        keys.extend(m.key() for m in consumer.consume(100, 1.0) if not m.error())
    finally:
        consumer.close()
    assert len(keys) == len(set(keys)), "an alert was delivered twice"
    return set(keys)


def test_example_visit_waits_for_raws_then_succeeds_with_the_pipelines_counts(
    operator_bed: Bed,
    pipeline_ns: dict[str, Any],
    backbone: Any,
    otlp_receiver: Any,
    kafka_broker: Any,
    schema_registry: Any,
) -> None:
    bed, ns = operator_bed[0], pipeline_ns["ns"]
    config = pipeline_ns["config"]
    topic = with_kafka(config, kafka_broker, schema_registry)
    apply(bed, config)
    visit = int(backbone.visits[0]["visit"])
    body = _visit(backbone, ns, "example", visit)
    example = bed.state_dir / f"visit-{uuid.uuid4().hex[:6]}.yaml"
    example.write_text(yaml.safe_dump(body))
    bed.kubectl("apply", "-f", str(example))
    wait_phase(bed, "example", ns, ("WaitingForRaws",), 240)
    for detector in body["spec"]["detectors"]:
        backbone.land(visit, detector)
    try:
        status = wait_phase(
            bed, "example", ns, ("Succeeded", "PartiallySucceeded", "Failed", "TimedOut"), 240
        )
    finally:
        for detector in body["spec"]["detectors"]:
            backbone.withdraw(visit, detector)
    if status["phase"] != "Succeeded":
        logs = {
            p["metadata"]["name"]: bed.container_log(p, "pipeline")[-3000:]
            for p in _pods(bed, ns, "example")
        }
        pytest.fail(f"{json.dumps(status, indent=1)}\n{json.dumps(logs, indent=1)}")
    # The counts are the pipeline's own: its done markers and alert packets in each spool.
    for pod in _pods(bed, ns, "example"):
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        detector = str(body["spec"]["detectors"][int(index)])
        spool = _spool(bed, pod)
        done = json.loads((spool / f"{visit}_{int(detector)}.done").read_text())
        assert status["detectorAlerts"][int(index)] == done["alerts"]
        assert int(detector) in dets.parse_indexes(status["detectorStates"]["Succeeded"])
    assert status["alerts"] == sum(status["detectorAlerts"])
    # The alert-relay sidecars delivered every alert to Kafka, once.
    assert len(_keys_on(kafka_broker.bootstrap, topic, status["alerts"])) == status["alerts"]
    rows = apdb_mod.open_apdb(pipeline_ns["apdb"]).row_counts()
    assert rows.get("DiaSource", 0) == status["diaSources"]

    _assert_one_trace(bed, ns, otlp_receiver, status["traceId"])


def _assert_one_trace(bed: cluster.Cluster, ns: str, otlp_receiver: Any, trace_hex: str) -> None:
    """One trace: the operator's root span over the pods' spans."""

    def with_root() -> list[dict[str, Any]] | None:
        spans = otlp_receiver.spans(trace_hex, timeout=1)
        return spans if any(s["name"] == "visit" for s in spans) else None

    spans = wait_for(with_root, 30, "the operator's root span in Jaeger")
    roots = [s for s in spans if s["name"] == "visit" and s["parent_span_id"] is None]
    assert len(roots) == 1 and roots[0]["service_name"] == "shutterline-operator"
    # Every pod span hangs off the root: directly, or through the pod span whose id the
    # pod's containers derive from the trace id and the pod's name (the telemetry sidecar
    # records that span when it runs).
    trace_id = int(trace_hex, 16)
    pod_ids = {
        f"{tracing.pod_span_id(trace_id, p['metadata']['name']):016x}"
        for p in _pods(bed, ns, "example")
    }
    by_id = {s["span_id"]: s for s in spans}
    pod_spans = [s for s in spans if s["service_name"] != "shutterline-operator"]
    assert pod_spans, "no pod span in the visit's trace"
    for span in pod_spans:
        while span["parent_span_id"] in by_id and span["span_id"] not in pod_ids:
            span = by_id[span["parent_span_id"]]
        assert span["parent_span_id"] in pod_ids | {roots[0]["span_id"]}, span


def test_raw_that_never_lands_fails_its_detector_with_the_reason(
    operator_bed: Bed, pipeline_ns: dict[str, Any], backbone: Any
) -> None:
    bed, ns = operator_bed[0], pipeline_ns["ns"]
    config = pipeline_ns["config"]
    config["spec"]["rawWaitSeconds"] = 5
    apply(bed, config)
    visit = int(backbone.visits[1]["visit"])
    detectors = [int(backbone.visits[1]["detectors"][0])]
    apply(bed, _visit(backbone, ns, "no-raw", visit, detectors=detectors))
    status = wait_phase(bed, "no-raw", ns, ("Failed", "Succeeded", "TimedOut"), 240)
    assert status["phase"] == "Failed", status
    entry = status["detectors"][str(detectors[0])]
    assert (entry["state"], entry["exitCode"], entry["attempts"]) == ("Failed", 66, 1)
    assert "raw" in entry["reason"].lower()


def test_corrupt_raw_exit_65_fails_only_its_index_without_retries(
    operator_bed: Bed, pipeline_ns: dict[str, Any], backbone: Any, tmp_path: Path
) -> None:
    bed, ns = operator_bed[0], pipeline_ns["ns"]
    apply(bed, pipeline_ns["config"])
    entry = backbone.visits[1]
    visit, (good, bad) = int(entry["visit"]), [int(d) for d in entry["detectors"][:2]]
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"SIMPLE  =                    T" + b" " * 2850)
    backbone.land(visit, good)
    backbone.land(visit, bad, junk)
    try:
        apply(bed, _visit(backbone, ns, "partial", visit, detectors=[good, bad]))
        status = wait_phase(
            bed, "partial", ns, ("PartiallySucceeded", "Succeeded", "Failed", "TimedOut"), 240
        )
    finally:
        backbone.withdraw(visit, good)
        backbone.withdraw(visit, bad)
    assert status["phase"] == "PartiallySucceeded", status
    failed = status["detectors"][str(bad)]
    assert (failed["state"], failed["exitCode"], failed["attempts"]) == ("Failed", 65, 1)
    assert failed["reason"]
    assert status["detectorStates"]["Succeeded"] == str(good)


def test_sigkilled_pod_is_retried_without_duplicate_alerts_or_apdb_rows(
    operator_bed: Bed, pipeline_ns: dict[str, Any], backbone: Any
) -> None:
    bed, ns = operator_bed[0], pipeline_ns["ns"]
    apply(bed, pipeline_ns["config"])
    entry = backbone.visits[0]
    visit, detector = int(entry["visit"]), int(entry["detectors"][0])
    apply(bed, _visit(backbone, ns, "killed", visit, detectors=[detector]))
    wait_phase(bed, "killed", ns, ("WaitingForRaws",), 240)
    pod = _pods(bed, ns, "killed")[0]
    pipeline = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "pipeline")
    pgid = int(pipeline["containerID"].removeprefix("testbed://"))
    backbone.land(visit, detector)
    try:
        wait_for(
            lambda: visit_status(bed, "killed", ns).get("phase") == "Processing", 60, "Processing"
        )
        os.killpg(pgid, signal.SIGKILL)
        status = wait_phase(
            bed, "killed", ns, ("Succeeded", "Failed", "PartiallySucceeded", "TimedOut"), 300
        )
    finally:
        backbone.withdraw(visit, detector)
    assert status["phase"] == "Succeeded", status
    record = status["detectors"][str(detector)]
    assert record["attempts"] == 2
    rows = apdb_mod.open_apdb(pipeline_ns["apdb"]).row_counts()
    assert rows.get("DiaSource", 0) == status["diaSources"]
    # Alert ids are deterministic: whatever the killed attempt spooled, the retry spooled too,
    # and the retry's spool holds exactly the alerts the status counts.
    attempts = sorted(_pods(bed, ns, "killed"), key=lambda p: p["metadata"]["creationTimestamp"])
    first, last = (
        {p.name for p in _spool(bed, a).glob("*.alert")} for a in (attempts[0], attempts[-1])
    )
    assert first <= last
    assert len(last) == record["alerts"]
