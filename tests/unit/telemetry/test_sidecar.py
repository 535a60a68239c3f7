"""``shutterline telemetry`` as a process: the pod span, the samples, metrics, exit and SIGTERM.

The "pipeline" here is a real child process doing known work; the sidecar finds it the way
it does on the test bed (``$TESTBED_POD_DIR/pids/pipeline``) or in a pod (by command line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from shutterline.telemetry import locate, podspan, summary, tracing

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
ROOT_SPAN = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{ROOT_SPAN:016x}-01"
POD = "visit-100007-abcde-0-xyz12"
SPEC = {"instrument": "SimDECam", "visitId": 100007, "band": "r"}

# A stand-in pipeline: allocate 120 MiB, burn 1 CPU second, write 4 MiB, exit.
_WORK = (
    "import os, time\n"
    "time.sleep(0.3)\n"
    "held = bytearray(120 * 1024 * 1024)\n"
    "for i in range(0, len(held), 4096): held[i] = 1\n"
    "t0 = time.process_time()\n"
    "while time.process_time() - t0 < 1.0: pass\n"
    "with open(os.environ['OUT'], 'wb') as f: f.write(b'x' * 4 * 1024 * 1024)\n"
    "time.sleep(0.3)\n"
)


class _Metrics(BaseHTTPRequestHandler):
    """An OTLP/HTTP metrics receiver: metric names and values, decoded with the proto."""

    received: ClassVar[list[tuple[str, float]]] = []

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        request.ParseFromString(body)
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    points = m.sum.data_points or m.gauge.data_points
                    for p in points:
                        value = p.as_double if p.HasField("as_double") else p.as_int
                        self.received.append((m.name, value))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def metrics_url() -> Iterator[str]:
    _Metrics.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/metrics"
    server.shutdown()
    server.server_close()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "pod" / "pids").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "SHUTTERLINE_REPO": str(tmp_path / "repo"),
        "SHUTTERLINE_APDB": str(tmp_path / "apdb.sqlite3"),
        "SHUTTERLINE_SPOOL": str(tmp_path / "scratch" / "spool"),
        "SHUTTERLINE_SPANS_PATH": str(tmp_path / "spans.jsonl"),
        "SHUTTERLINE_TELEMETRY_HZ": "10",
        "SHUTTERLINE_VISIT_SPEC": json.dumps(SPEC),
        "SHUTTERLINE_DETECTORS": "3,5",
        "JOB_COMPLETION_INDEX": "1",
        "TRACEPARENT": TRACEPARENT,
        "POD_NAME": POD,
        "POD_NAMESPACE": "prompt",
        "NODE_NAME": "node-7",
        "JOB_NAME": "visit-100007",
        "CONTAINER_NAME": "telemetry",
        "TESTBED_POD_DIR": str(tmp_path / "pod"),
        **extra,
    }


def _sidecar(env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "shutterline.cli.main", "telemetry"]
    # Its log goes to the test's captured output.
    return subprocess.Popen(argv, env=env)


def _spans(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "spans.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_state(path: Path, state: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = summary.read_summary(path)
        if record and record["state"] == state:
            return record
        time.sleep(0.05)
    raise AssertionError(f"summary never reached {state!r}: {summary.read_summary(path)}")


def test_pod_span_id_is_what_every_other_container_parents_on() -> None:
    ctx = tracing.pod_context(TRACEPARENT, POD)
    from opentelemetry import trace

    pod = trace.get_current_span(ctx).get_span_context()
    assert pod.trace_id == TRACE_ID
    assert pod.span_id == tracing.pod_span_id(TRACE_ID, POD)
    assert pod.span_id != tracing.pod_span_id(TRACE_ID, POD + "-retry")
    generator = podspan.PodSpanIdGenerator(pod.span_id)
    assert generator.generate_span_id() == pod.span_id
    assert generator.generate_span_id() != pod.span_id  # only the first span gets it


def test_identity_comes_from_the_operators_variables() -> None:
    ident = podspan.PodIdentity.from_env(_env(Path("/nonexistent")))
    assert ident.span_name == "detector 5"
    assert ident.data_id() == {
        "visit": 100007,
        "detector": 5,
        "instrument": "SimDECam",
        "band": "r",
    }
    # A pod the pipeline will refuse (exit 65) still gets its pod span, with what is known.
    bad = podspan.PodIdentity.from_env(
        {"SHUTTERLINE_DETECTORS": "3,5", "JOB_COMPLETION_INDEX": "2", "POD_NAME": POD}
    )
    assert bad.detector is None and bad.span_name == f"pod {POD}"
    assert podspan.PodIdentity.from_env({"SHUTTERLINE_VISIT_SPEC": "{visitId"}).visit is None
    # The analysis pod lists the visit's detectors as JSON: a visit-wide pod span, quietly.
    analysis = podspan.PodIdentity.from_env({"SHUTTERLINE_DETECTORS": "[3, 5]", "POD_NAME": POD})
    assert analysis.detector is None and analysis.span_name == f"pod {POD}"


@pytest.mark.slow
def test_sidecar_records_the_pod_span_over_the_pipelines_life(
    tmp_path: Path, metrics_url: str
) -> None:
    env = _env(tmp_path, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=metrics_url)
    sidecar = _sidecar(env)
    time.sleep(0.5)  # the sidecar starts first and waits for the pipeline
    pipeline = subprocess.Popen(
        [sys.executable, "-c", _WORK], env={**env, "OUT": str(tmp_path / "out.bin")}
    )
    (tmp_path / "pod" / "pids" / "pipeline").write_text(str(pipeline.pid))
    assert pipeline.wait(30) == 0
    assert sidecar.wait(30) == 0

    (span,) = _spans(tmp_path)
    assert span["name"] == "detector 5"
    assert span["trace_id"] == f"{TRACE_ID:032x}"
    assert span["span_id"] == f"{tracing.pod_span_id(TRACE_ID, POD):016x}"
    assert span["parent_span_id"] == f"{ROOT_SPAN:016x}"
    attrs = span["attributes"]
    assert attrs["visit"] == 100007 and attrs["detector"] == 5 and attrs["band"] == "r"
    assert attrs["telemetry.ended_by"] == "pipeline exited"
    assert attrs["process.pid"] == pipeline.pid
    # The child's work, seen from outside: 1 CPU s (+ interpreter start), 120 MiB, 4 MiB.
    assert 1.0 <= attrs["process.cpu_s"] < 1.6
    assert attrs["process.peak_rss_bytes"] >= 120 * 2**20
    samples = [e for e in span["events"] if e["name"] == "sample"]
    assert len(samples) == attrs["telemetry.samples"] >= 10  # >= 1.6 s at 10 Hz
    assert samples[-1]["attributes"]["process.cpu_s"] <= attrs["process.cpu_s"]
    record = _wait_state(summary.summary_path(tmp_path / "scratch" / "spool"), "finished")
    assert record["samples"] == attrs["telemetry.samples"]
    assert record["write_chars"] >= 4 * 2**20
    assert record["pod_span_id"] == span["span_id"]
    names = {name for name, _ in _Metrics.received}
    assert {"process.cpu.time", "process.memory.usage", "process.disk.io"} <= names
    cpu = max(v for name, v in _Metrics.received if name == "process.cpu.time")
    assert cpu == pytest.approx(attrs["process.cpu_s"], abs=0.2)


@pytest.mark.slow
def test_sigterm_ends_the_span_and_exits_zero(tmp_path: Path) -> None:
    env = _env(tmp_path)
    sidecar = _sidecar(env)
    pipeline = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "pod" / "pids" / "pipeline").write_text(str(pipeline.pid))
        _wait_state(summary.summary_path(tmp_path / "scratch" / "spool"), "running")
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(15) == 0
    finally:
        pipeline.kill()
        pipeline.wait()
    (span,) = _spans(tmp_path)
    assert span["attributes"]["telemetry.ended_by"] == "SIGTERM"


@pytest.mark.slow
def test_a_restarted_sidecar_records_no_second_pod_span(tmp_path: Path) -> None:
    env = _env(tmp_path)
    first = _sidecar(env)
    _wait_state(summary.summary_path(tmp_path / "scratch" / "spool"), "waiting")
    first.send_signal(signal.SIGTERM)  # before any pipeline: still a finished pod span
    assert first.wait(15) == 0
    second = _sidecar(env)
    time.sleep(1.5)
    assert second.poll() is None  # idles: Kubernetes would only restart it again
    second.send_signal(signal.SIGTERM)
    assert second.wait(15) == 0
    (span,) = _spans(tmp_path)
    assert span["attributes"]["telemetry.ended_by"] == "stopped before the pipeline started"


def test_the_pipeline_is_found_by_its_command_line(tmp_path: Path) -> None:
    assert locate.is_pipeline_command(["/venv/bin/shutterline", "pod", "run"])
    assert locate.is_pipeline_command(["python", "-m", "shutterline.cli.main", "-v", "pod", "run"])
    assert locate.is_pipeline_command(["/venv/bin/shutterline", "pod", "analyze"])
    assert not locate.is_pipeline_command(["/venv/bin/shutterline", "pod", "precache"])
    assert not locate.is_pipeline_command(["/venv/bin/shutterline", "telemetry"])
    script = tmp_path / "shutterline"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    script.chmod(0o755)
    # Other pods' pipelines may run on this host (its process namespace is shared).
    others = set(locate.scan_proc())
    child = subprocess.Popen([str(script), "pod", "run"])
    try:
        deadline = time.monotonic() + 10
        while child.pid not in locate.scan_proc() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in locate.scan_proc() and child.pid not in others
        env = {k: v for k, v in os.environ.items() if k != "TESTBED_POD_DIR"}
        assert locate.find_pipeline(env) is not None
    finally:
        child.kill()
        child.wait()
    assert child.pid not in locate.scan_proc()


def test_the_analysis_container_is_found_by_its_pid_file_on_the_test_bed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {"TESTBED_POD_DIR": str(tmp_path)}
    assert locate.find_pipeline(env) is None
    (pids / "analysis").write_text(str(os.getpid()))
    assert locate.find_pipeline(env) == os.getpid()
