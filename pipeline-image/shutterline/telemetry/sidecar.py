"""``shutterline telemetry``: the pod span, and the pipeline process watched from outside.

The sidecar starts first in the pod and opens the pod span at once, so pre-cache and the
wait for the pipeline fall inside it. It then waits for the pipeline container's process,
samples its process tree from ``/proc`` at ``telemetry_hz`` into metrics, span events and
the rolling summary file, and ends the span when the pipeline has exited or on SIGTERM,
whichever comes first. It needs nothing from the pipeline: no port, no library, no file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanLimits, TracerProvider

from shutterline.pipeline import settings as settings_mod
from shutterline.telemetry import locate, metrics, podspan, proc, summary, tracing

__all__ = ["MAX_EVENTS", "run"]

log = logging.getLogger(__name__)

#: Sample events kept on the pod span (8 minutes at 4 Hz); later samples reach the metrics,
#: the summary and the span's closing attributes only.
MAX_EVENTS = 2000
SERVICE = "shutterline-telemetry"
#: Seconds between OTLP metric exports (an HTTP request each; the samples themselves go on
#: the pod span at the full rate, and the last one is exported when the span ends).
METRICS_EXPORT_S = 5.0


@dataclasses.dataclass
class _Tally:
    """What the samples add up to, for the summary file and the span's closing attributes."""

    identity: podspan.PodIdentity
    hz: float
    span_context: trace.SpanContext
    started: float = dataclasses.field(default_factory=time.time)
    state: str = "waiting"
    pid: int | None = None
    samples: int = 0
    peak_rss: int = 0
    max_threads: int = 0
    last: proc.ProcSample | None = None

    def add(self, sample: proc.ProcSample) -> None:
        self.samples += 1
        self.peak_rss = max(self.peak_rss, sample.rss_bytes, sample.hwm_bytes)
        self.max_threads = max(self.max_threads, sample.threads)
        self.last = sample

    def record(self) -> dict[str, Any]:
        last = self.last
        return {
            "state": self.state,
            "pod": self.identity.pod_name,
            **self.identity.data_id(),
            "pid": self.pid,
            "hz": self.hz,
            "samples": self.samples,
            "started": self.started,
            "updated": time.time(),
            "cpu_s": last.cpu_s if last else 0.0,
            "peak_rss_bytes": self.peak_rss,
            "rss_bytes": last.rss_bytes if last else 0,
            "read_bytes": last.read_bytes if last else 0,
            "write_bytes": last.write_bytes if last else 0,
            "read_chars": last.read_chars if last else 0,
            "write_chars": last.write_chars if last else 0,
            "max_threads": self.max_threads,
            "trace_id": f"{self.span_context.trace_id:032x}",
            "pod_span_id": f"{self.span_context.span_id:016x}",
        }


def _provider(
    settings: settings_mod.Settings, traceparent: str | None
) -> tuple[TracerProvider, Any]:
    """This sidecar's tracer provider, whose first span gets the pod span's id."""
    parent = tracing.context_from_traceparent(traceparent)
    generator = None
    if parent is not None and settings.pod_name:
        root = trace.get_current_span(parent).get_span_context()
        pod_id = tracing.pod_span_id(root.trace_id, settings.pod_name)
        generator = podspan.PodSpanIdGenerator(pod_id)
    else:
        log.warning("no TRACEPARENT or POD_NAME: the pod span starts a trace of its own")
    provider = tracing.new_provider(
        SERVICE,
        settings.otlp_endpoint,
        settings.spans_path,
        id_generator=generator,
        span_limits=SpanLimits(max_events=MAX_EVENTS),
    )
    return provider, parent


def run(
    settings: settings_mod.Settings,
    env: Mapping[str, str],
    stop: threading.Event,
) -> int:
    """Record the pod span and sample the pipeline until it exits or ``stop`` is set.

    Returns 0, the exit code of a sidecar that did its job (also when stopped before the
    pipeline started: the span then says so).
    """
    identity = podspan.PodIdentity.from_env(env)
    path = summary.summary_path(settings.spool)
    previous = summary.read_summary(path)
    done = previous is not None and previous.get("state") == "finished"
    if done and previous and previous.get("pod") == identity.pod_name:
        # Kubernetes restarts an exited native sidecar while the pod lives: the span is
        # already out, and a second one with the same id would corrupt the trace.
        log.info("pod span of %s already recorded; idle until SIGTERM", identity.pod_name)
        stop.wait()
        return 0
    provider, parent = _provider(settings, env.get("TRACEPARENT"))
    meters = metrics.meter_provider(
        provider.resource, settings.otlp_metrics_endpoint, METRICS_EXPORT_S
    )
    attributes = {**identity.data_id(), "telemetry.hz": settings.telemetry_hz}
    # The span starts with this process, before its imports: the next container of the pod
    # is started as soon as this one is, and its first span must fall inside the pod's.
    span = provider.get_tracer("shutterline.telemetry").start_span(
        identity.span_name,
        context=parent,
        attributes=attributes,
        start_time=int(proc.started_at(os.getpid()) * 1e9),
    )
    tally = _Tally(identity, settings.telemetry_hz, span.get_span_context())
    summary.write_summary(path, tally.record())
    ended_by = "error"
    try:
        ended_by = _watch(settings, env, stop, span, tally, path, meters)
    finally:
        _close(span, tally, path, provider, meters, ended_by)
    if settings.native_sidecar:
        stop.wait()  # the kubelet would restart an exited sidecar: stay until the pod ends
    return 0


def _watch(
    settings: settings_mod.Settings,
    env: Mapping[str, str],
    stop: threading.Event,
    span: trace.Span,
    tally: _Tally,
    path: Any,
    meters: Any,
) -> str:
    """Wait for the pipeline, then sample it; returns why watching ended."""
    period = 1.0 / settings.telemetry_hz
    pid = locate.wait_for_pipeline(stop, min(period, 0.1), env)
    if pid is None:
        return "stopped before the pipeline started"
    try:
        tree = proc.ProcessTree(pid)
    except proc.ProcessGone:
        return "pipeline exited before its first sample"
    tally.pid, tally.state = pid, "running"
    span.add_event("pipeline started", {"pid": pid})
    log.info("sampling pipeline process %d at %.1f Hz", pid, settings.telemetry_hz)
    gauges = metrics.ProcessMetrics(meters, tally.identity.data_id())
    next_at = time.monotonic()
    while True:
        # One more sample after SIGTERM: the last figures, and whether the pipeline is gone
        # already (Kubernetes stops the sidecars as soon as the main container has exited).
        stopping = stop.is_set()
        try:
            sample = tree.sample()
        except proc.ProcessGone:
            return "pipeline exited"
        tally.add(sample)
        gauges.latest = sample
        if tally.samples <= MAX_EVENTS:
            span.add_event("sample", _event(sample), timestamp=int(sample.time * 1e9))
        summary.write_summary(path, tally.record())
        if stopping:
            return "SIGTERM"
        next_at += period
        stop.wait(max(0.0, next_at - time.monotonic()))


def _event(sample: proc.ProcSample) -> dict[str, float | int]:
    return {
        "process.cpu_s": sample.cpu_s,
        "process.rss_bytes": sample.rss_bytes,
        "process.hwm_bytes": sample.hwm_bytes,
        "process.read_bytes": sample.read_bytes,
        "process.write_bytes": sample.write_bytes,
        "process.threads": sample.threads,
    }


def _close(
    span: trace.Span,
    tally: _Tally,
    path: Any,
    provider: TracerProvider,
    meters: Any,
    ended_by: str,
) -> None:
    """End and export the span, flush the metrics, then mark the summary finished."""
    record = tally.record()
    span.set_attributes(
        {
            "telemetry.ended_by": ended_by,
            "telemetry.samples": tally.samples,
            "process.pid": tally.pid or 0,
            "process.cpu_s": record["cpu_s"],
            "process.peak_rss_bytes": record["peak_rss_bytes"],
            "process.read_bytes": record["read_bytes"],
            "process.write_bytes": record["write_bytes"],
            "process.max_threads": tally.max_threads,
        }
    )
    span.end()
    provider.force_flush()
    provider.shutdown()
    meters.force_flush()
    meters.shutdown()
    tally.state = "finished"
    summary.write_summary(path, tally.record())
    log.info("pod span ended (%s) after %d samples", ended_by, tally.samples)
