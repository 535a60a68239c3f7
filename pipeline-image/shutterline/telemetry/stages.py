"""Stage spans with timings; quantities broadcast with one line from the stage that knows them.

The one standard for task-level timing: a driver runs each stage inside
`StageRecorder.stage`, which opens its span (carrying the detector's data id), measures wall
and CPU seconds and resident memory, and keeps the timeline; a stage that wants finer detail
times its steps with `Laps`, which makes each step a child span. No stage reads a clock itself.
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace

__all__ = ["Laps", "StageRecorder", "StageTiming"]

_TRACER = trace.get_tracer("shutterline")
_METER = metrics.get_meter("shutterline")


@dataclass
class StageTiming:
    """Wall and CPU seconds of one stage, with the offsets the timeline picture needs.

    ``cpu_s`` counts every thread of the process (what an outside observer sees too);
    spans also carry ``stage.thread_cpu_s``, the stage's own thread. ``start`` is seconds
    since the recorder was made; ``unix_start`` the wall clock, so the
    stage can be lined up with samples taken by another process. ``peak_rss_bytes`` is the
    stage's own peak resident memory if the recorder measured it (``peak_memory``), else the
    process's lifetime peak at the stage's end.
    """

    name: str
    start: float
    wall_s: float
    cpu_s: float
    unix_start: float = 0.0
    rss_bytes: int = 0
    peak_rss_bytes: int = 0
    thread_cpu_s: float = 0.0


@dataclass
class StageRecorder:
    """Opens one child span per stage and collects timings and broadcast quantities.

    ``attributes`` (the data id: visit, detector, instrument, band) go on every span; add to
    them with `identify` once more is known. `emit` adds a quantity to the current span, to
    the summary and to an OpenTelemetry histogram of the same name. With ``peak_memory`` the
    kernel's peak-RSS mark is reset at each stage start (``/proc/self/clear_refs``), so each
    stage gets its own peak; it costs a page-table walk per stage and resets the mark any
    outside observer reads, so it is for measurements, not for production.
    """

    attributes: dict[str, Any] = field(default_factory=dict)
    timings: list[StageTiming] = field(default_factory=list)
    quantities: dict[str, float | int | str] = field(default_factory=dict)
    peak_memory: bool = False
    _origin: float = field(default_factory=time.perf_counter)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[trace.Span]:
        """Run the body as stage ``name``: a child span, timed; errors mark the span failed."""
        if self.peak_memory:
            _reset_peak_rss()
        unix0, wall0, cpu0, own0 = time.time(), time.perf_counter(), _cpu_seconds(), _thread_cpu()
        with _TRACER.start_as_current_span(
            name, attributes=self.attributes, record_exception=True, set_status_on_exception=True
        ) as span:
            try:
                yield span
            finally:
                wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
                own = _thread_cpu() - own0
                rss, hwm = _memory()
                span.set_attributes(
                    {
                        "stage.wall_s": wall,
                        "stage.cpu_s": cpu,
                        "stage.thread_cpu_s": own,
                        "stage.rss_bytes": rss,
                        "stage.peak_rss_bytes": hwm,
                    }
                )
                self.timings.append(
                    StageTiming(name, wall0 - self._origin, wall, cpu, unix0, rss, hwm, own)
                )

    def identify(self, **data_id: Any) -> None:
        """Add to the data id of every later stage span, and of the current span."""
        self.attributes.update(data_id)
        trace.get_current_span().set_attributes(data_id)

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


class Laps:
    """Consecutive steps inside a stage: each `lap` closes a child span of the current span.

    ``laps`` holds ``time_<step>_s`` wall seconds for a stage's own statistics.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.laps: dict[str, float] = {}
        self._last_ns = time.time_ns()
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        """End step ``step`` now (it began at the previous lap or at construction)."""
        now, now_ns = time.perf_counter(), time.time_ns()
        span = _TRACER.start_span(f"{self.prefix}.{step}", start_time=self._last_ns)
        span.end(end_time=now_ns)
        self.laps[f"time_{step}_s"] = now - self._last
        self._last, self._last_ns = now, now_ns


_HISTOGRAMS: dict[str, metrics.Histogram] = {}


def _histogram(name: str) -> metrics.Histogram:
    if name not in _HISTOGRAMS:
        _HISTOGRAMS[name] = _METER.create_histogram(f"shutterline.{name}")
    return _HISTOGRAMS[name]


def _cpu_seconds() -> float:
    """CPU seconds of the whole process: every thread, as an outside observer sees it."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu() -> float:
    """CPU seconds of the calling thread alone (the stage's own work, not its neighbours')."""
    return time.thread_time()


_STATUS = Path("/proc/self/status")


def _memory() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes; zeros where /proc is not there."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return 0, 0
    values = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line[:5]] = int(line.split()[1]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def _reset_peak_rss() -> None:
    # "5" resets the peak resident set size to the current one (Linux 4.0+, proc(5)).
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")
