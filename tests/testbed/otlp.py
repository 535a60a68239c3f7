"""OTLP/HTTP trace receivers the tests can query for the spans they caused.

``start(state_dir)`` runs Jaeger v2 (built once from its Go module) with in-memory storage
and returns a `JaegerReceiver`; ``start_local(state_dir)`` runs a small receiver in a thread
of the test process instead (no build), returning an `OtlpReceiver`. Both have ``.endpoint``
(the OTLP/HTTP base URL; exporters post to ``<endpoint>/v1/traces``), ``.spans(trace_id)``
returning flat span dicts decoded with the ``opentelemetry-proto`` package, and ``.stop()``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import string
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.testbed import builds, procs

__all__ = [
    "JAEGER_VERSION",
    "JaegerReceiver",
    "OtlpReceiver",
    "decode_request",
    "ensure_built",
    "start",
    "start_local",
]

Span = dict[str, Any]


def _any_value(value: Any) -> Any:
    """A Python value for an OTLP ``AnyValue`` protobuf."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in pairs}


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes ids in hex where protobuf's JSON mapping wants base64: convert."""
    if isinstance(node, list):
        return [_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        is_hex = isinstance(value, str) and len(value) in (16, 32)
        if key in _ID_FIELDS and is_hex and all(c in string.hexdigits for c in value):
            value = base64.b64encode(bytes.fromhex(value)).decode()
        out[key] = _ids_to_base64(value)
    return out


def decode_request(body: bytes, content_type: str) -> list[Span]:
    """Spans of an ``ExportTraceServiceRequest`` (protobuf or OTLP/JSON) as flat dicts.

    Ids come out in lowercase hex, times in integer nanoseconds since the Unix epoch;
    ``parent_span_id`` is None for a root span.
    """
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    request = trace_service_pb2.ExportTraceServiceRequest()
    if "json" in content_type:
        document = _ids_to_base64(json.loads(body))
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    else:
        request.ParseFromString(body)
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    {
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "kind": int(span.kind),
                        "attributes": _attributes(span.attributes),
                        "start_time_unix_nano": int(span.start_time_unix_nano),
                        "end_time_unix_nano": int(span.end_time_unix_nano),
                        "status_code": int(span.status.code),
                        "status_message": span.status.message,
                        "service_name": resource.get("service.name"),
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                        "events": [
                            {
                                "name": e.name,
                                "time_unix_nano": int(e.time_unix_nano),
                                "attributes": _attributes(e.attributes),
                            }
                            for e in span.events
                        ],
                    }
                )
    return spans


@dataclass
class _Store:
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/traces":
                self.send_error(404, "only /v1/traces is served")
                return
            length = int(self.headers.get("Content-Length", "0"))
            content_type = self.headers.get("Content-Type", "application/x-protobuf")
            try:
                spans = decode_request(self.rfile.read(length), content_type)
            except Exception as error:  # a malformed request is the client's fault: 400
                self.send_error(400, f"cannot decode OTLP request: {error}")
                return
            with store.lock:
                store.spans.extend(spans)
            # An empty ExportTraceServiceResponse encodes as zero bytes in both forms.
            body = b"{}" if "json" in content_type else b""
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    return Handler


@dataclass
class OtlpReceiver:
    """A running in-process OTLP/HTTP receiver."""

    endpoint: str
    server: ThreadingHTTPServer
    thread: threading.Thread
    store: _Store

    def spans(self, trace_id: str | None = None, timeout: float = 10) -> list[Span]:
        """Received spans (of ``trace_id`` if given), waiting up to ``timeout`` s for any."""
        deadline = time.monotonic() + timeout
        while True:
            with self.store.lock:
                found = [
                    s for s in self.store.spans if trace_id is None or s["trace_id"] == trace_id
                ]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving and join the server thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_local(state_dir: Path) -> OtlpReceiver:
    """Start the in-process receiver on a free loopback port (``state_dir`` is only made)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    store = _Store()
    server = ThreadingHTTPServer(("127.0.0.1", procs.free_port()), _handler(store))
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    builds.say(f"otlp receiver ready on {endpoint}")
    return OtlpReceiver(endpoint, server, thread, store)


JAEGER_PACKAGE = "github.com/jaegertracing/jaeger/cmd/jaeger"
JAEGER_VERSION = "v1.76.0"
# Jaeger's own go.mod pins this fork; a throwaway build module must repeat it.
_JAEGER_REPLACES = {"github.com/Shopify/sarama": "github.com/Shopify/sarama v1.33.0"}

_JAEGER_CONFIG = """service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info
    traces:
      level: none
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    # Self-tracing (on by default) exports to 127.0.0.1:4317, which is not ours to use.
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def ensure_built() -> Path:
    """The cached Jaeger v2 binary, built on first use (several minutes, with progress)."""
    return builds.go_build(
        "jaeger", JAEGER_PACKAGE, JAEGER_VERSION, "jaeger", replaces=_JAEGER_REPLACES
    )


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@dataclass
class JaegerReceiver:
    """A running Jaeger v2: OTLP/HTTP in at ``endpoint``, its query API at ``query_url``."""

    endpoint: str
    query_url: str
    process: procs.ManagedProcess

    def env(self) -> dict[str, str]:
        """Standard OpenTelemetry exporter variables pointing at this receiver."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "JAEGER_QUERY_URL": self.query_url,
        }

    def services(self) -> list[str]:
        """Service names Jaeger has seen spans from."""
        return list(_get_json(f"{self.query_url}/api/v3/services").get("services") or [])

    def _trace(self, trace_id: str) -> list[Span]:
        url = f"{self.query_url}/api/v3/traces/{trace_id}?raw_traces=true"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise
        body = json.dumps(document.get("result") or {}).encode()
        return decode_request(body, "application/json")

    def _all(self) -> list[Span]:
        spans: list[Span] = []
        for service in self.services():
            query = urllib.parse.urlencode(
                {
                    "query.service_name": service,
                    "query.start_time_min": "2000-01-01T00:00:00Z",
                    "query.start_time_max": "2100-01-01T00:00:00Z",
                    "query.raw_traces": "true",
                    "query.num_traces": "1000",
                }
            )
            document = _get_json(f"{self.query_url}/api/v3/traces?{query}")
            body = json.dumps(document.get("result") or {}).encode()
            spans += decode_request(body, "application/json")
        unique = {(s["trace_id"], s["span_id"]): s for s in spans}
        return list(unique.values())

    def spans(self, trace_id: str | None = None, timeout: float = 10) -> list[Span]:
        """Stored spans (of ``trace_id`` if given), waiting up to ``timeout`` s for any."""
        deadline = time.monotonic() + timeout
        while True:
            self.process.check_alive()
            found = self._trace(trace_id) if trace_id else self._all()
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop Jaeger (its spans live in memory and go with it)."""
        self.process.stop()


def start(state_dir: Path, timeout: float = 60.0) -> JaegerReceiver:
    """Build Jaeger if needed and start it with in-memory storage on free loopback ports.

    Raises `procs.ComponentError` naming ``jaeger`` with its log tail on failure.
    """
    binary = ensure_built()
    state_dir.mkdir(parents=True, exist_ok=True)
    ports = {"otlp": procs.free_port(), "query": procs.free_port()}
    ports["query_grpc"] = procs.free_port()
    config = state_dir / "jaeger.yaml"
    config.write_text(_JAEGER_CONFIG.format(**ports))
    argv = [str(binary), "--config", str(config)]
    process = procs.ManagedProcess("jaeger", argv, state_dir / "jaeger.log").start()
    receiver = JaegerReceiver(
        f"http://127.0.0.1:{ports['otlp']}", f"http://127.0.0.1:{ports['query']}", process
    )
    started = time.monotonic()

    def ready() -> bool:
        receiver.services()
        # The OTLP receiver answers 405 to GET once it listens; any HTTP answer means up.
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(f"{receiver.endpoint}/v1/traces", timeout=1).close()
        return True

    procs.wait_process_ready(process, ready, timeout, "jaeger (OTLP receiver)")
    builds.say(f"jaeger ready on {receiver.endpoint} in {time.monotonic() - started:.1f} s")
    return receiver
