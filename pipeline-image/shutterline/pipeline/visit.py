"""A visit: its detectors in parallel processes, each run exactly as a worker pod runs it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import multiprocessing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace

from shutterline import exceptions
from shutterline.butler import transient
from shutterline.pipeline import settings as settings_mod
from shutterline.telemetry import stages, tracing

__all__ = ["DetectorReport", "detector_pool", "run_detector_job", "run_visit"]

log = logging.getLogger(__name__)
_TRACER = trace.get_tracer("shutterline.pipeline")


@dataclasses.dataclass
class DetectorReport:
    """Outcome of one detector, small enough to pass between processes and print."""

    visit: int
    detector: int
    status: str  # "succeeded" or "failed"
    reason: str = ""
    exit_code: int = 0
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    timeline: list[tuple[str, float, float]] = dataclasses.field(default_factory=list)
    quantities: dict[str, Any] = dataclasses.field(default_factory=dict)
    dia_sources: Any = None  # astropy Table of the DIA sources (None on failure)
    src: Any = None  # bright calibrated sources, for astrometry scoring
    alert_paths: list[str] = dataclasses.field(default_factory=list)


_CONFIGURED: set[tuple[str | None, Path | None]] = set()


def _configure_once(settings: settings_mod.Settings) -> None:
    """Send spans where ``settings`` says, once per destination in this process."""
    key = (settings.otlp_endpoint, settings.spans_path)
    if key not in _CONFIGURED:
        tracing.configure("shutterline-pipeline", settings.otlp_endpoint, settings.spans_path)
        _CONFIGURED.add(key)


def run_detector_job(
    settings: settings_mod.Settings,
    visit: int,
    detector: int,
    traceparent: str | None = None,
) -> DetectorReport:
    """Process one detector: load (pre-cache or direct), run every stage, write outputs.

    Never raises for a data or service problem: the report carries the failure reason and the
    exit code a pod would use, and the spool holds nothing of this detector.
    """
    _configure_once(settings)
    rec = stages.StageRecorder(attributes={"visit": visit, "detector": detector})
    # In a worker pod the detector's spans hang under the pod span the telemetry sidecar records.
    parent = tracing.pod_context(traceparent, settings.pod_name)
    # The pod span is "detector N" already; the pipeline container's own span is "pipeline".
    name = "pipeline" if settings.pod_name else f"detector {detector}"
    with _TRACER.start_as_current_span(name, context=parent, attributes=rec.attributes) as span:
        report = DetectorReport(visit, detector, "succeeded")
        try:
            _run(settings, visit, detector, rec, report)
        except Exception as exc:
            _record_failure(settings, report, exc, span)
        report.seconds = rec.seconds
        report.timeline = [(t.name, t.start, t.wall_s) for t in rec.timings]
        report.quantities = dict(rec.quantities)
        span.set_attribute("shutterline.status", report.status)
    _flush()
    return report


def _run(
    settings: settings_mod.Settings,
    visit: int,
    detector: int,
    rec: stages.StageRecorder,
    report: DetectorReport,
) -> None:
    from shutterline.butler import names
    from shutterline.pipeline import detector as detector_mod
    from shutterline.pipeline import io as pipeline_io

    inputs, local = pipeline_io.load_inputs(settings, visit, detector, rec)
    rec.identify(instrument=names.INSTRUMENT, band=inputs.band)
    outputs, paths = detector_mod.process_detector(inputs, settings, rec)
    report.alert_paths = paths
    report.dia_sources = outputs.dia_sources
    report.src = (
        outputs.src[outputs.src["psf_star"]] if "psf_star" in outputs.src.colnames else None
    )
    pipeline_io.store_products_reported(settings, local, outputs, rec)


def _record_failure(
    settings: settings_mod.Settings, report: DetectorReport, exc: Exception, span: trace.Span
) -> None:
    from shutterline.pipeline import detector as detector_mod

    report.status = "failed"
    report.reason = f"{type(exc).__name__}: {exc}"
    is_ours = isinstance(exc, exceptions.ShutterlineError)
    # A service error (S3, PostgreSQL, network) is worth a retry; anything else is not.
    report.exit_code = transient.exit_code(exc)
    span.set_status(trace.Status(trace.StatusCode.ERROR, report.reason))
    # An unexpected exception is a bug, not bad data: keep its traceback in the log.
    log.error(
        "visit %s detector %s failed: %s",
        report.visit,
        report.detector,
        report.reason,
        exc_info=None if is_ours else exc,
    )
    try:
        detector_mod.discard_partial(settings.spool, report.visit, report.detector)
    except Exception as cleanup:
        log.error("could not clean the spool after a failure: %s", cleanup)


def run_visit(
    settings: settings_mod.Settings,
    visit: int,
    detectors: Sequence[int],
    jobs: int = 1,
    on_done: Callable[[DetectorReport], None] | None = None,
    pool: concurrent.futures.Executor | None = None,
) -> list[DetectorReport]:
    """Run ``detectors`` of ``visit`` in up to ``jobs`` processes; reports in detector order.

    The APDB schema is created first if the database has none, so detectors only write.
    ``pool`` (see `detector_pool`) is used instead of a new one: a night of visits then pays
    each worker's imports once, not once per visit.
    """
    from shutterline.association import apdb

    _configure_once(settings)
    if "://" not in settings.apdb:  # a SQLite file: its directory must exist
        Path(settings.apdb).parent.mkdir(parents=True, exist_ok=True)
    apdb.open_apdb(settings.apdb, create=True)
    with _TRACER.start_as_current_span(f"visit {visit}", attributes={"visit": visit}):
        traceparent = tracing.current_traceparent()
        reports = _run_detectors(settings, visit, detectors, jobs, traceparent, on_done, pool)
    _flush()
    return reports


def _run_detectors(
    settings: settings_mod.Settings,
    visit: int,
    detectors: Sequence[int],
    jobs: int,
    traceparent: str | None,
    on_done: Callable[[DetectorReport], None] | None,
    pool: concurrent.futures.Executor | None,
) -> list[DetectorReport]:
    done: dict[int, DetectorReport] = {}
    if pool is None and jobs <= 1:
        for d in detectors:
            done[d] = run_detector_job(settings, visit, d, traceparent)
            if on_done:
                on_done(done[d])
        return [done[d] for d in detectors]
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(detector_pool(jobs))
        futures = {
            pool.submit(run_detector_job, settings, visit, d, traceparent): d for d in detectors
        }
        for future in concurrent.futures.as_completed(futures):
            done[futures[future]] = future.result()
            if on_done:
                on_done(done[futures[future]])
    return [done[d] for d in detectors]


def detector_pool(jobs: int) -> concurrent.futures.ProcessPoolExecutor:
    """Worker processes for `run_visit`, started fresh (``spawn``): no state of this process
    (threads, open databases, tracing) leaks into a detector, as none would in a pod."""
    ctx = multiprocessing.get_context("spawn")
    return concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx)


def _flush() -> None:
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()


def detectors_of_visit(settings: settings_mod.Settings, visit: int) -> list[int]:
    """Detectors with a raw ingested for ``visit`` in the central repository."""
    from shutterline.butler import names, repo

    butler = repo.open_repo(settings.repo)
    refs = butler.query_datasets(
        names.RAW,
        collections=names.RAW_COLLECTION,
        where=f"exposure = {int(visit)}",
        explain=False,
    )
    if not refs:
        raise exceptions.MissingInputError(names.RAW, {"exposure": visit}, "no raws ingested")
    return sorted({int(r.dataId["detector"]) for r in refs})
