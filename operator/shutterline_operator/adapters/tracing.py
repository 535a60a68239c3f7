"""The visit's root span, recorded when the visit ends, with the ids handed to its pods.

The operator may restart while a visit runs, so it cannot hold the span open: the ids come
from the Visit's uid (`core.tracecontext.traceparent_of`) and, when the visit finishes, it
exports one finished span with those ids, starting at the Visit's creation. Pods' spans name
it as their parent.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from shutterline_operator.core import timing, tracecontext

__all__ = ["RootSpans"]

_FAILED = ("Failed", "TimedOut", "Rejected", "PartiallySucceeded")


def _nanos(text: str) -> int:
    return int(timing.parse_time(text).timestamp() * 1e9)


class RootSpans:
    """Exports finished root spans to OTLP/HTTP, one batch processor per endpoint."""

    def __init__(self, default_endpoint: str | None = None) -> None:
        self.default = default_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        self.resource = Resource.create({"service.name": "shutterline-operator"})
        self.scope = InstrumentationScope("shutterline_operator")
        self._processors: dict[str, BatchSpanProcessor] = {}
        self._lock = threading.Lock()

    def _processor(self, endpoint: str) -> BatchSpanProcessor:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        with self._lock:
            if endpoint not in self._processors:
                exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
                self._processors[endpoint] = BatchSpanProcessor(exporter)
            return self._processors[endpoint]

    def record(self, visit: dict[str, Any], status: dict[str, Any], endpoint: str | None) -> bool:
        """Export the root span of a finished ``visit``; False when there is nowhere to send it."""
        target = endpoint or self.default
        ids = tracecontext.parse_traceparent(tracecontext.traceparent_of(visit))
        if not target or ids is None:
            return False
        spec, meta = visit["spec"], visit["metadata"]
        # Kubernetes times have whole seconds: end when the operator saw the end (a little
        # after the last child span), unless that was long after (a restarted operator).
        start = _nanos(str(meta["creationTimestamp"]))
        end = time.time_ns()
        if status.get("finishedAt"):
            end = min(end, _nanos(str(status["finishedAt"])) + 2_000_000_000)
        phase = str(status.get("phase"))
        code = trace.StatusCode.ERROR if phase in _FAILED else trace.StatusCode.OK
        span = ReadableSpan(
            name="visit",
            context=trace.SpanContext(ids[0], ids[1], False, trace.TraceFlags(1)),
            resource=self.resource,
            attributes={
                "shutterline.visit": int(spec["visitId"]),
                "shutterline.instrument": str(spec["instrument"]),
                "shutterline.phase": phase,
                "shutterline.detectors": int(str(status.get("progress", "/0")).split("/")[-1]),
                "shutterline.alerts": int(status.get("alerts", 0)),
                "k8s.namespace.name": str(meta["namespace"]),
                "k8s.job.name": str(status.get("jobName", "")),
            },
            kind=trace.SpanKind.SERVER,
            status=trace.Status(
                code, None if code == trace.StatusCode.OK else status.get("message")
            ),
            start_time=start,
            end_time=max(end, start),
            instrumentation_scope=self.scope,
        )
        self._processor(target).on_end(span)
        return True

    def flush(self) -> None:
        """Send whatever is batched (at shutdown)."""
        for processor in list(self._processors.values()):
            processor.force_flush(5000)
