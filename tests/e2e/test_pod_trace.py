"""One detector's worker pod on the test bed, every container as the operator builds it.

A Job on the test bed's Kubernetes: the telemetry and alert-relay native sidecars, the
``precache`` init container and the ``pipeline`` main container (``shutterline pod run``),
sharing the process namespace and the ``scratch`` volume, against the backbone fixture (S3 +
PostgreSQL, raws held back), the real Kafka broker and Jaeger. The test plays the operator:
it opens the visit's root span, hands its ``TRACEPARENT`` to the pod, and lands the raw once
the pipeline waits for it. Read back from Jaeger: root > pod span (the sidecar's, at the
derived id) > pre-cache, pipeline (> preload, wait_raw, raw, each stage), the relay's
publication; per-stage durations; sampled CPU and memory on the pod span; ``k8s.*``
resource attributes per container. Read back from Kafka: the metrics record carries the
telemetry summary.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from shutterline.telemetry import tracing
from tests.e2e import relay_harness
from tests.testbed import otlp
from tests.testbed.k8s import cluster

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.s3,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.slow,
]

IMAGE = "registry.example/shutterline/shutterline-pipeline:dev"
STAGES = (
    "preload",
    "wait_raw",
    "raw",
    "isr",
    "characterize",
    "calibrate",
    "template",
    "subtract",
    "dia_detect",
    "solar_system",
    "association",
    "alerts",
    "store",
)
HZ = 4.0


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _job(name: str, namespace: str, settings: dict[str, str], detectors: int) -> dict[str, Any]:
    """The operator's Job for one visit (docs/architecture.md, "The worker pod")."""
    common = [_env(k, v) for k, v in settings.items()]
    common += [
        _env("JOB_NAME", name),
        _field("POD_NAME", "metadata.name"),
        _field("POD_NAMESPACE", "metadata.namespace"),
        _field("NODE_NAME", "spec.nodeName"),
    ]
    scratch = [{"name": "scratch", "mountPath": "/scratch"}]

    def container(cname: str, args: list[str], **extra: Any) -> dict[str, Any]:
        env = [*common, _env("CONTAINER_NAME", cname)]
        return {"name": cname, "image": IMAGE, "args": args, "env": env,
                "volumeMounts": scratch, **extra}  # fmt: skip

    sidecar = {"restartPolicy": "Always"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "completionMode": "Indexed",
            "completions": detectors,
            "parallelism": 1,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "shareProcessNamespace": True,
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "initContainers": [
                        container("telemetry", ["telemetry"], **sidecar),
                        container("alert-relay", ["relay"], **sidecar),
                        container("precache", ["pod", "precache"]),
                    ],
                    "containers": [container("pipeline", ["pod", "run"])],
                }
            },
        },
    }


def _pod(bed: cluster.Cluster, job: str, namespace: str) -> dict[str, Any] | None:
    out = bed.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={job}", "-o", "json")
    pods = json.loads(out.stdout)["items"]
    return dict(pods[0]) if pods else None


def _wait_job(bed: cluster.Cluster, name: str, namespace: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = bed.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={name}", "-o", "json")
        pods = json.loads(out.stdout)["items"]
        if pods and pods[0]["status"].get("phase") in ("Succeeded", "Failed"):
            return dict(pods[0])
        time.sleep(1)
    pytest.fail(f"pod of Job {name} did not finish in {timeout:.0f} s")


def _trace(receiver: otlp.JaegerReceiver, trace_id: str, at_least: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while True:
        spans = receiver.spans(trace_id)
        if len(spans) >= at_least or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def _metrics_record(bootstrap: str, topic: str, timeout: float = 60.0) -> dict[str, Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                return dict(json.loads(message.value() or b"{}"))
    finally:
        consumer.close()
    pytest.fail(f"no metrics record on {topic} within {timeout:.0f} s")


def test_pod_trace_reaches_jaeger_with_stages_and_samples(
    k8s_cluster: cluster.Cluster,
    otlp_receiver: otlp.JaegerReceiver,
    kafka_broker: Any,
    backbone: Any,
) -> None:
    from opentelemetry import trace

    entry = backbone.visits[-1]
    visit, detector = int(entry["visit"]), int(entry["detectors"][-1])
    spec = backbone.visit_spec(visit, detectors=[detector])
    topic = relay_harness.unique_topic("alerts")
    relay_harness.create_topics(kafka_broker.bootstrap, topic, f"{topic}-metrics")
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    k8s_cluster.kubectl("create", "namespace", namespace)
    operator = tracing.new_provider("shutterline-operator", otlp_receiver.endpoint)
    root = operator.get_tracer("test").start_span(f"visit {visit}")
    with trace.use_span(root, end_on_exit=False):
        traceparent = tracing.current_traceparent()
    assert traceparent
    settings = {
        **backbone.env(),
        "SHUTTERLINE_APDB": backbone.new_apdb(),
        "SHUTTERLINE_SPOOL": "/scratch/spool",
        "SHUTTERLINE_WORKDIR": "/scratch/work",
        "SHUTTERLINE_RAW_WAIT_S": "300",
        "SHUTTERLINE_TELEMETRY_HZ": str(HZ),
        "SHUTTERLINE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "SHUTTERLINE_ALERT_TOPIC": topic,
        "SHUTTERLINE_METRICS_TOPIC": f"{topic}-metrics",
        "SHUTTERLINE_VISIT_SPEC": json.dumps(spec),
        "SHUTTERLINE_DETECTORS": str(detector),
        "TRACEPARENT": traceparent,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
    }
    try:
        k8s_cluster.kubectl(
            "apply", "-f", "-", stdin=json.dumps(_job("visit", namespace, settings, 1))
        )
        pod = _land_when_waiting(k8s_cluster, backbone, namespace, visit, detector)
    finally:
        root.end()
        operator.force_flush()
        backbone.withdraw(visit, detector)
    pod_name = pod["metadata"]["name"]
    logs = {c: k8s_cluster.container_log(pod, c) for c in ("pipeline", "telemetry", "alert-relay")}
    assert pod["status"]["phase"] == "Succeeded", json.dumps(logs, indent=1)
    trace_id = f"{root.get_span_context().trace_id:032x}"
    spans = _trace(otlp_receiver, trace_id, 5 + len(STAGES))
    _check_tree(spans, pod_name, namespace, root.get_span_context().span_id)
    record = _metrics_record(kafka_broker.bootstrap, f"{topic}-metrics")
    telemetry = record["telemetry"]
    assert telemetry["pod"] == pod_name and telemetry["samples"] >= 4
    assert telemetry["cpu_s"] > 1 and telemetry["peak_rss_bytes"] > 100 * 2**20


def _land_when_waiting(
    bed: cluster.Cluster, backbone: Any, namespace: str, visit: int, detector: int
) -> dict[str, Any]:
    """Land the raw once the pipeline waits for it; the pod once it has finished."""
    deadline, landed = time.monotonic() + 600, False
    while time.monotonic() < deadline:
        pod = _pod(bed, "visit", namespace)
        if pod and pod["status"].get("phase") in ("Succeeded", "Failed"):
            return pod
        if pod and not landed:
            try:
                waiting = "waiting for the raw" in bed.container_log(pod, "pipeline")
            except (FileNotFoundError, KeyError):
                waiting = False
            if waiting:
                time.sleep(1.0)  # a second inside the wait_raw span
                backbone.land(visit, detector)
                landed = True
        time.sleep(0.5)
    pytest.fail("the pod did not finish within 600 s")


def _check_tree(spans: list[dict[str, Any]], pod_name: str, namespace: str, root_id: int) -> None:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        by_name.setdefault(s["name"], []).append(s)
    detector = next(n for n in by_name if n.startswith("detector "))
    (pod_span,) = by_name[detector]
    trace_id = int(pod_span["trace_id"], 16)
    assert pod_span["span_id"] == f"{tracing.pod_span_id(trace_id, pod_name):016x}"
    assert pod_span["parent_span_id"] == f"{root_id:016x}"
    res = pod_span["resource"]
    assert res["k8s.pod.name"] == pod_name and res["k8s.container.name"] == "telemetry"
    assert res["k8s.namespace.name"] == namespace and res["k8s.job.name"] == "visit"
    assert res["k8s.node.name"].startswith("testbed-node")
    (pipeline,) = by_name["pipeline"]
    assert pipeline["parent_span_id"] == pod_span["span_id"]
    assert pipeline["resource"]["k8s.container.name"] == "pipeline"
    # The pod span spans the pipeline's life.
    assert pod_span["start_time_unix_nano"] <= pipeline["start_time_unix_nano"]
    assert pod_span["end_time_unix_nano"] >= pipeline["end_time_unix_nano"]
    (precache,) = by_name["precache"]  # the init container's span
    assert precache["parent_span_id"] == pod_span["span_id"]
    assert pod_span["start_time_unix_nano"] <= precache["start_time_unix_nano"]
    assert precache["resource"]["k8s.container.name"] == "precache"
    assert precache["attributes"]["precache.bytes"] > 0
    assert precache["attributes"]["precache.datasets"] > 0
    (publish,) = [s for n, ss in by_name.items() if n.startswith("publish alerts") for s in ss]
    assert publish["parent_span_id"] == pod_span["span_id"]
    assert publish["resource"]["k8s.container.name"] == "alert-relay"
    assert publish["attributes"]["shutterline.alerts.delivered"] > 0
    stage_cpu = 0.0
    for name in STAGES:
        (stage,) = by_name[name]
        assert stage["parent_span_id"] == pipeline["span_id"], name
        attrs = stage["attributes"]
        assert attrs["stage.wall_s"] > 0 and attrs["visit"] and attrs["detector"], name
        assert attrs["instrument"] == "SimDECam" and attrs["band"], name
        seconds = (stage["end_time_unix_nano"] - stage["start_time_unix_nano"]) / 1e9
        assert seconds == pytest.approx(attrs["stage.wall_s"], abs=0.01), name
        stage_cpu += attrs["stage.cpu_s"]
    # Steps inside a stage are child spans of it (telemetry.stages.Laps).
    (background,) = by_name["characterize.background"]
    assert background["parent_span_id"] == by_name["characterize"][0]["span_id"]
    _check_samples(pod_span, pipeline, stage_cpu)


def _check_samples(pod_span: dict[str, Any], pipeline: dict[str, Any], stage_cpu: float) -> None:
    attrs = pod_span["attributes"]
    assert attrs["telemetry.ended_by"] == "pipeline exited"
    samples = [e for e in pod_span["events"] if e["name"] == "sample"]
    run_s = (pipeline["end_time_unix_nano"] - pipeline["start_time_unix_nano"]) / 1e9
    assert len(samples) == attrs["telemetry.samples"] >= 0.8 * HZ * run_s
    # Seen from outside, the process spent at least what its stages measured inside
    # (imports and start-up come on top) and kept at least the memory of its largest stage.
    assert attrs["process.cpu_s"] >= 0.95 * stage_cpu
    assert attrs["process.peak_rss_bytes"] > 100 * 2**20
    cpu = [e["attributes"]["process.cpu_s"] for e in samples]
    assert cpu == sorted(cpu) and cpu[-1] <= attrs["process.cpu_s"]
    assert all(e["attributes"]["process.rss_bytes"] > 0 for e in samples)
