"""One detector run as the worker pod runs it, on the test bed, traced into Jaeger.

A Job on the test bed's Kubernetes with the telemetry native sidecar and the pipeline
container (sharing the process namespace), fed the operator's environment by hand: the test
plays the operator, opens the visit's root span and hands its ``TRACEPARENT`` to the pod.
Read back from Jaeger: root > pod span (the sidecar's, at the derived id) > pipeline > each
stage; per-stage durations; the sampled CPU and memory on the pod span; ``k8s.*`` resource
attributes per container.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shutterline.pipeline import summary
from shutterline.telemetry import tracing
from tests.testbed import otlp
from tests.testbed.k8s import cluster

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

IMAGE = "registry.example/shutterline/shutterline-pipeline:dev"
STAGES = summary.TABLE_STAGES  # precache, load_inputs, isr, ..., store
HZ = 4.0

# Until ``shutterline pod run`` is on main, the pipeline container runs the same detector job
# the pod command runs, from the same environment.
_PIPELINE = """
import json, os, sys
from shutterline.pipeline import settings, visit
cfg = settings.Settings.from_env()
spec = json.loads(os.environ["SHUTTERLINE_VISIT_SPEC"])
index = int(os.environ.get("JOB_COMPLETION_INDEX", "0"))
detector = int(os.environ["SHUTTERLINE_DETECTORS"].split(",")[index])
report = visit.run_detector_job(cfg, spec["visitId"], detector, os.environ["TRACEPARENT"])
print(report.status, report.reason, flush=True)
sys.exit(report.exit_code)
"""


@pytest.fixture(scope="module")
def one_detector_night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A one-detector night (1024 x 2048) with calibrations, templates and an APDB."""
    from shutterline.association import apdb
    from shutterline.demo import night

    root = tmp_path_factory.mktemp("pod-trace-night")
    cfg = night.DemoConfig(
        workdir=root,
        seed=11,
        fields=1,
        detectors=1,
        visits=1,
        template_visits=3,
        shape=(1024, 2048),
        jobs=2,
    )
    night_dir, repo = night.prepare_repository(cfg)
    entry = yaml.safe_load((night_dir / "schedule.yaml").read_text())["visits"][0]
    apdb.open_apdb(str(root / "apdb.sqlite3"), create=True)
    yield {"repo": repo, "apdb": root / "apdb.sqlite3", "visit": entry}


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _job(
    name: str, namespace: str, night: dict[str, Any], traceparent: str, otlp_url: str
) -> dict[str, Any]:
    entry = night["visit"]
    spec = {"instrument": "SimDECam", "visitId": entry["visit"], "band": entry["band"]}
    common = [
        _env("SHUTTERLINE_REPO", str(night["repo"])),
        _env("SHUTTERLINE_APDB", str(night["apdb"])),
        _env("SHUTTERLINE_SPOOL", "/scratch/spool"),
        _env("SHUTTERLINE_WORKDIR", "/scratch/work"),
        _env("SHUTTERLINE_TELEMETRY_HZ", str(HZ)),
        _env("SHUTTERLINE_VISIT_SPEC", json.dumps(spec)),
        _env("SHUTTERLINE_DETECTORS", ",".join(str(d) for d in entry["detectors"])),
        _env("TRACEPARENT", traceparent),
        _env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_url),
        _env("JOB_NAME", name),
        _field("POD_NAME", "metadata.name"),
        _field("POD_NAMESPACE", "metadata.namespace"),
        _field("NODE_NAME", "spec.nodeName"),
    ]
    scratch = [{"name": "scratch", "mountPath": "/scratch"}]

    def container(cname: str, command: list[str], **extra: Any) -> dict[str, Any]:
        env = [*common, _env("CONTAINER_NAME", cname)]
        return {"name": cname, "image": IMAGE, "command": command, "env": env,
                "volumeMounts": scratch, **extra}  # fmt: skip

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "completionMode": "Indexed",
            "completions": len(entry["detectors"]),
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "shareProcessNamespace": True,
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "initContainers": [
                        container("telemetry", ["shutterline", "telemetry"], restartPolicy="Always")
                    ],
                    "containers": [container("pipeline", ["python", "-c", _PIPELINE])],
                }
            },
        },
    }


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


def test_pod_trace_reaches_jaeger_with_stages_and_samples(
    k8s_cluster: cluster.Cluster,
    otlp_receiver: otlp.JaegerReceiver,
    one_detector_night: dict[str, Any],
    tmp_path: Path,
) -> None:
    from opentelemetry import trace

    namespace = f"t-{uuid.uuid4().hex[:8]}"
    k8s_cluster.kubectl("create", "namespace", namespace)
    operator = tracing.new_provider("shutterline-operator", otlp_receiver.endpoint)
    visit = one_detector_night["visit"]["visit"]
    root = operator.get_tracer("test").start_span(f"visit {visit}")
    with trace.use_span(root, end_on_exit=False):
        traceparent = tracing.current_traceparent()
    assert traceparent
    try:
        job = _job("visit", namespace, one_detector_night, traceparent, otlp_receiver.endpoint)
        k8s_cluster.kubectl("apply", "-f", "-", stdin=json.dumps(job))
        pod = _wait_job(k8s_cluster, "visit", namespace, 600)
    finally:
        root.end()
        operator.force_flush()
    pod_name = pod["metadata"]["name"]
    log = k8s_cluster.container_log(pod, "pipeline")
    assert pod["status"]["phase"] == "Succeeded", log + k8s_cluster.container_log(pod, "telemetry")
    trace_id = f"{root.get_span_context().trace_id:032x}"
    spans = _trace(otlp_receiver, trace_id, 3 + len(STAGES))
    _check_tree(spans, pod_name, namespace, root.get_span_context().span_id)
    scratch = k8s_cluster.pod_dir(pod) / "volumes" / "scratch"
    record = json.loads((scratch / "telemetry.json").read_text())
    assert record["state"] == "finished" and record["pod"] == pod_name
    assert record["samples"] >= 4


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
    stage_cpu = 0.0
    for name in STAGES:
        (stage,) = by_name[name]
        assert stage["parent_span_id"] == pipeline["span_id"], name
        attrs = stage["attributes"]
        assert attrs["stage.wall_s"] > 0 and attrs["visit"] and attrs["detector"], name
        seconds = (stage["end_time_unix_nano"] - stage["start_time_unix_nano"]) / 1e9
        assert seconds == pytest.approx(attrs["stage.wall_s"], abs=0.01), name
        stage_cpu += attrs["stage.cpu_s"]
    assert by_name["isr"][0]["attributes"]["band"] and by_name["isr"][0]["attributes"]["instrument"]
    assert by_name["precache"][0]["attributes"]["precache.bytes"] > 0
    assert by_name["precache"][0]["attributes"]["precache.datasets"] > 0
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
