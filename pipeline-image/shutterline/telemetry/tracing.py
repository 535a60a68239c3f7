"""Tracer provider set-up and W3C trace-context hand-over between processes."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "K8S_ATTRIBUTES",
    "JsonLinesSpanExporter",
    "configure",
    "context_from_traceparent",
    "current_traceparent",
    "kubernetes_attributes",
    "new_provider",
    "pod_context",
    "pod_span_id",
    "resource",
]

_PROPAGATOR = TraceContextTextMapPropagator()


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line; safe across threads and processes
    (one ``write`` per line on a file opened in append mode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(_span_dict(s)) + "\n" for s in spans)
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _span_dict(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "service_name": span.resource.attributes.get("service.name"),
        "events": [
            {"name": e.name, "time_unix_nano": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
    }


#: Downward-API variable -> OpenTelemetry Kubernetes semantic-convention resource attribute.
K8S_ATTRIBUTES = {
    "POD_NAME": "k8s.pod.name",
    "POD_NAMESPACE": "k8s.namespace.name",
    "NODE_NAME": "k8s.node.name",
    "JOB_NAME": "k8s.job.name",
    "CONTAINER_NAME": "k8s.container.name",
}


def kubernetes_attributes(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``k8s.*`` resource attributes of this container from the variables the pod sets."""
    env = os.environ if env is None else env
    return {attr: env[var] for var, attr in K8S_ATTRIBUTES.items() if env.get(var)}


def resource(service_name: str, attributes: Mapping[str, str] | None = None) -> Resource:
    """The resource of every span and metric of this process: service and Kubernetes ids."""
    return Resource.create(
        {"service.name": service_name, **kubernetes_attributes(), **(attributes or {})}
    )


def new_provider(
    service_name: str,
    otlp_endpoint: str | None = None,
    json_path: Path | None = None,
    attributes: dict[str, str] | None = None,
    id_generator: IdGenerator | None = None,
    span_limits: SpanLimits | None = None,
) -> TracerProvider:
    """A tracer provider sending spans where asked; not installed as the global one.

    Parameters are those of `configure`; ``id_generator`` and ``span_limits`` go to the
    provider (the telemetry sidecar's pod span uses both).
    """
    provider = TracerProvider(
        resource=resource(service_name, attributes),
        id_generator=id_generator,
        span_limits=span_limits,
    )
    _add_destinations(provider, otlp_endpoint, json_path)
    return provider


def configure(
    service_name: str,
    otlp_endpoint: str | None = None,
    json_path: Path | None = None,
    attributes: dict[str, str] | None = None,
) -> TracerProvider:
    """Install a tracer provider for this process.

    Parameters
    ----------
    service_name
        ``service.name`` of every span from this process.
    otlp_endpoint
        Base URL of an OTLP/HTTP receiver (``http://host:4318``); spans are batched to it.
    json_path
        A JSON-lines file that receives every span as well (the embedded run's record).
    attributes
        More resource attributes; the ``k8s.*`` ones of a worker pod are added from the
        downward-API variables (`kubernetes_attributes`).
    """
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = new_provider(service_name, otlp_endpoint, json_path, attributes)
        trace.set_tracer_provider(provider)
        return provider
    # OpenTelemetry allows one global provider per process: a second configuration (another
    # run in the same process) adds its destinations to it.
    _add_destinations(provider, otlp_endpoint, json_path)
    return provider


def _add_destinations(
    provider: TracerProvider, otlp_endpoint: str | None, json_path: Path | None
) -> None:
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    if json_path is not None:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(json_path)))


def context_from_traceparent(traceparent: str | None) -> otel_context.Context | None:
    """The parent context carried by a W3C ``traceparent`` string (``TRACEPARENT`` in pods)."""
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span, to hand to a child process."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def traceparent_from_env() -> str | None:
    """``TRACEPARENT`` as the operator sets it on worker pods."""
    return os.environ.get("TRACEPARENT") or None


def pod_span_id(trace_id: int, pod_name: str) -> int:
    """The span id of a worker pod's span, derived so every container of the pod agrees.

    A pod's containers are separate processes that cannot share an open span. The operator
    hands them the visit's root context (``TRACEPARENT``); each derives the pod span's id
    from the trace id and the pod's name (unique per attempt), the telemetry sidecar records
    that span over the pod's life, and every other container parents its spans on it.
    """
    digest = hashlib.sha256(f"{trace_id:032x}/{pod_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def pod_context(traceparent: str | None, pod_name: str | None) -> otel_context.Context | None:
    """The context whose parent is the pod span of ``pod_name`` in ``traceparent``'s trace.

    Without a pod name (the embedded run) this is the ``traceparent`` context itself.
    """
    parent = context_from_traceparent(traceparent)
    if parent is None or not pod_name:
        return parent
    root = trace.get_current_span(parent).get_span_context()
    pod = trace.SpanContext(
        trace_id=root.trace_id,
        span_id=pod_span_id(root.trace_id, pod_name),
        is_remote=True,
        trace_flags=root.trace_flags,
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(pod))
