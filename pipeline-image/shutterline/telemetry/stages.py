"""Stage spans with timings; quantities broadcast with one line from the stage that knows them."""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace

__all__ = ["StageRecorder", "StageTiming"]

_TRACER = trace.get_tracer("shutterline")
_METER = metrics.get_meter("shutterline")


@dataclass
class StageTiming:
    """Wall and CPU seconds of one stage, with the offsets the timeline picture needs."""

    name: str
    start: float
    wall_s: float
    cpu_s: float


@dataclass
class StageRecorder:
    """Opens one child span per stage and collects timings and broadcast quantities.

    ``attributes`` (visit, detector, ...) go on every span. `emit` adds a quantity to the
    current span, to the summary and to an OpenTelemetry histogram of the same name.
    """

    attributes: dict[str, Any] = field(default_factory=dict)
    timings: list[StageTiming] = field(default_factory=list)
    quantities: dict[str, float | int | str] = field(default_factory=dict)
    _origin: float = field(default_factory=time.perf_counter)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[trace.Span]:
        """Run the body as stage ``name``: a child span, timed; errors mark the span failed."""
        wall0, cpu0 = time.perf_counter(), _cpu_seconds()
        with _TRACER.start_as_current_span(
            name, attributes=self.attributes, record_exception=True, set_status_on_exception=True
        ) as span:
            try:
                yield span
            finally:
                wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
                span.set_attribute("stage.wall_s", wall)
                span.set_attribute("stage.cpu_s", cpu)
                self.timings.append(StageTiming(name, wall0 - self._origin, wall, cpu))

    def emit(self, name: str, value: float | int | str) -> None:
        """Broadcast one quantity: span attribute, summary entry and (if numeric) a metric."""
        self.quantities[name] = value
        trace.get_current_span().set_attribute(f"shutterline.{name}", value)
        if isinstance(value, int | float):
            _histogram(name).record(value, attributes=self.attributes)

    @property
    def seconds(self) -> dict[str, float]:
        """Wall seconds by stage name."""
        return {t.name: t.wall_s for t in self.timings}


_HISTOGRAMS: dict[str, metrics.Histogram] = {}


def _histogram(name: str) -> metrics.Histogram:
    if name not in _HISTOGRAMS:
        _HISTOGRAMS[name] = _METER.create_histogram(f"shutterline.{name}")
    return _HISTOGRAMS[name]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
