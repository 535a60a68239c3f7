"""The telemetry sidecar's OpenTelemetry metrics: the latest /proc sample, read on collection.

Names and units follow the OpenTelemetry semantic conventions for process metrics
(``process.cpu.time``, ``process.memory.usage``, ``process.disk.io``, ``process.thread.count``);
the kernel's peak resident memory has no convention and is ``shutterline.process.memory.peak``.
Observable instruments: the sampler only replaces `ProcessMetrics.latest`, and a reader turns
it into data points at its own interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from shutterline.telemetry import proc

__all__ = ["ProcessMetrics", "meter_provider"]


def meter_provider(
    resource: Resource,
    endpoint: str | None = None,
    interval_s: float = 5.0,
    readers: Sequence[MetricReader] = (),
) -> MeterProvider:
    """A meter provider exporting by OTLP/HTTP to ``endpoint`` (full ``.../v1/metrics`` URL).

    Without an endpoint (and no ``readers``) the instruments are recorded nowhere, which is
    cheap: the spans still carry the samples.
    """
    all_readers = list(readers)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=endpoint)
        interval_ms = max(interval_s, 0.1) * 1000
        all_readers.append(PeriodicExportingMetricReader(exporter, interval_ms))
    return MeterProvider(resource=resource, metric_readers=all_readers)


class ProcessMetrics:
    """Observable process instruments fed by the sampler.

    Parameters
    ----------
    provider : MeterProvider
        Where the instruments live.
    attributes : dict
        Data id of the watched detector (visit, detector), on every data point.
    """

    def __init__(self, provider: metrics.MeterProvider, attributes: dict[str, Any]) -> None:
        self.latest: proc.ProcSample | None = None
        self.attributes = dict(attributes)
        meter = provider.get_meter("shutterline.telemetry")
        meter.create_observable_counter(
            "process.cpu.time", [self._cpu], unit="s", description="user + system CPU time"
        )
        meter.create_observable_gauge(
            "process.memory.usage", [self._rss], unit="By", description="resident memory"
        )
        meter.create_observable_gauge(
            "shutterline.process.memory.peak",
            [self._hwm],
            unit="By",
            description="peak resident memory (VmHWM)",
        )
        meter.create_observable_counter(
            "process.disk.io", [self._io], unit="By", description="bytes read/written to storage"
        )
        meter.create_observable_gauge("process.thread.count", [self._threads], unit="{thread}")

    def _point(self, value: float, **extra: str) -> Iterable[metrics.Observation]:
        if self.latest is None:
            return []
        return [metrics.Observation(value, {**self.attributes, **extra})]

    def _cpu(self, _: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return self._point(self.latest.cpu_s if self.latest else 0.0)

    def _rss(self, _: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return self._point(self.latest.rss_bytes if self.latest else 0)

    def _hwm(self, _: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return self._point(self.latest.hwm_bytes if self.latest else 0)

    def _threads(self, _: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return self._point(self.latest.threads if self.latest else 0)

    def _io(self, _: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        if self.latest is None:
            return []
        read = self._point(self.latest.read_bytes, **{"disk.io.direction": "read"})
        write = self._point(self.latest.write_bytes, **{"disk.io.direction": "write"})
        return [*read, *write]
