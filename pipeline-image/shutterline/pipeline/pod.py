"""The worker pod's own containers: pre-stage from the announcement, then wait and process.

``precache`` (init container) copies what the detector needs into a local repository before
its raw exists. ``run`` (main container) does everything it can before the shutter closes:
imports, opening the repository and the APDB, reading every input into memory. Then it
waits for the raw, and from the moment the raw lands only the raw's own transfer and the
stages stand between it and the alerts. Afterwards it keeps the products, writes the spool's
metrics record and done marker, waits for the relay when a broker is configured, and leaves
a termination message for the operator (docs/architecture.md, "The worker pod").
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from shutterline import exceptions
from shutterline.butler import arrival, planfile, precache, selection, transient
from shutterline.pipeline import io as pipeline_io
from shutterline.pipeline import records as report_mod
from shutterline.pipeline import settings as settings_mod
from shutterline.pipeline import task as task_mod
from shutterline.telemetry import stages, tracing

if TYPE_CHECKING:
    from lsst.daf.butler import Butler, DatasetId

    from shutterline.butler.inputs import DetectorInputs
    from shutterline.pipeline.detector import DetectorOutputs

__all__ = ["RAW_ARRIVED", "announcement", "precache_task", "run_task"]

log = logging.getLogger(__name__)
_TRACER = trace.get_tracer("shutterline.pipeline")

#: Created in the work directory once the raw has landed and passed its checks; the
#: operator's readiness probe looks for it (WaitingForRaws -> Processing).
RAW_ARRIVED = "raw-arrived"


def announcement(task: task_mod.DetectorTask) -> selection.Announcement:
    """What the announcement says of this pod's detector."""
    spec = task.spec
    return selection.Announcement(
        visit=spec.visit_id,
        detector=task.detector,
        band=spec.band,
        physical_filter=spec.physical_filter,
        ra=spec.boresight.ra,
        dec=spec.boresight.dec,
        rotation=spec.boresight.rotation,
        mjd=spec.mjd_tai,
        exptime=spec.exposure_time,
    )


def _start_tracing(
    settings: settings_mod.Settings, env: Mapping[str, str]
) -> otel_context.Context | None:
    # configure adds the pod's k8s.* resource attributes from the downward-API variables.
    tracing.configure("shutterline-pipeline", settings.otlp_endpoint, settings.spans_path)
    return tracing.pod_context(env.get("TRACEPARENT") or None, env.get("POD_NAME") or None)


def _flush() -> None:
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()


def precache_task(
    settings: settings_mod.Settings,
    task: task_mod.DetectorTask,
    env: Mapping[str, str] | None = None,
) -> precache.PrecacheReport | None:
    """Pre-stage the detector's inputs into its local repository (``None``: already there).

    Raises
    ------
    shutterline.exceptions.ShutterlineError
        A missing or damaged input (65), or a service error (75).
    """
    env = os.environ if env is None else env
    local = pipeline_io.local_repo_path(settings, task.visit, task.detector)
    if (local / precache.PRESTAGED_FILE).is_file():  # a restarted init container
        return None
    parent = _start_tracing(settings, env)
    attributes = {"visit": task.visit, "detector": task.detector}
    try:
        with _TRACER.start_as_current_span("precache", context=parent, attributes=attributes) as s:
            with transient.retriable(f"pre-staging visit {task.visit} detector {task.detector}"):
                report = precache.precache_announced(
                    settings.repo, str(local), announcement(task), settings.padding_arcsec
                )
            s.set_attribute("precache.datasets", report.n_datasets)
            s.set_attribute("precache.bytes", report.bytes)
    finally:
        _flush()
    return report


@dataclasses.dataclass
class _Preloaded:
    butler: Butler
    plan: selection.DetectorPlan
    data: dict[DatasetId, Any]  # every input dataset (Exposure, raw HDUList, Table)


def _preload(settings: settings_mod.Settings, task: task_mod.DetectorTask) -> _Preloaded:
    """Everything that needs no raw: imports, the local repository, every input, the APDB."""
    from shutterline.association import apdb
    from shutterline.butler import inputs, repo
    from shutterline.pipeline import detector as _detector  # noqa: F401  (import cost now)
    from shutterline.pipeline import outputs as _outputs  # noqa: F401

    local = pipeline_io.local_repo_path(settings, task.visit, task.detector)
    precache.read_prestaged(local)  # names a repository the init container never filled
    butler = repo.open_repo(str(local), writeable=True)
    # The init container's plan, not a second one from the local registry (~30 ms of CPU).
    plan = planfile.read_plan(local, butler.dimensions, task.visit, task.detector)
    data = inputs.read_inputs(butler, plan)
    with transient.retriable(f"opening the APDB {settings.apdb}"):
        apdb.open_apdb(settings.apdb, create=True)
    if arrival.prepare(task.raw_uri):
        log.warning("the raw %s was there before its detector was ready", task.raw_uri)
    return _Preloaded(butler, plan, data)


def _arrive(
    settings: settings_mod.Settings,
    task: task_mod.DetectorTask,
    pre: _Preloaded,
    rec: stages.StageRecorder,
) -> tuple[DetectorInputs, Path]:
    """Fetch and check the landed raw; the detector's inputs, complete, and the raw's path."""
    from shutterline.butler import formatters, inputs

    with rec.stage("raw") as span:
        path = arrival.download_raw(task.raw_uri, settings.workdir / "raw")
        info = arrival.check_raw(path, task.raw_uri, announcement(task))
        raw = formatters.read_raw_file(str(path))
        (settings.workdir / RAW_ARRIVED).touch()
        span.set_attribute("raw.bytes", path.stat().st_size)
    # The raw is the authority on when and where it was taken (a replayed night announces
    # its visits at wall-clock times): asteroid predictions use its time and footprint.
    loaded = dataclasses.replace(
        inputs.inputs_from(pre.plan, pre.data, raw=raw),
        mjd=info.mjd,
        exptime=info.exptime,
        boresight=(info.tel_ra, info.tel_dec),
        footprint=info.corners if info.corners is not None else pre.plan.corners,
    )
    return loaded, path


def _keep_products(
    settings: settings_mod.Settings,
    pre: _Preloaded,
    raw: Path,
    out: DetectorOutputs,
    rec: stages.StageRecorder,
) -> None:
    """Ingest the raw into the local repository (its visit records), then the products."""
    from shutterline.butler import ingest

    try:
        ingest.ingest_raws(pre.butler, [raw], progress=False, transfer="direct")
    except Exception as exc:
        rec.emit("products_error", f"raw not ingested locally: {type(exc).__name__}: {exc}")
        return
    pipeline_io.store_products_reported(settings, pre.butler, out, rec)


def _process(
    settings: settings_mod.Settings,
    task: task_mod.DetectorTask,
    rec: stages.StageRecorder,
    result: report_mod.PodResult,
) -> None:
    from shutterline.pipeline import detector as detector_mod

    with rec.stage("preload"):
        pre = _preload(settings, task)
    log.info(
        "visit %s detector %s: %d inputs in memory after %.2f s; waiting for the raw at %s",
        task.visit,
        task.detector,
        len(pre.data),
        rec.seconds["preload"],
        task.raw_uri,
    )
    with rec.stage("wait_raw"):
        result.raw_seen_at = arrival.wait_for_raw(task.raw_uri, settings.raw_wait_s)
    loaded, raw = _arrive(settings, task, pre, rec)
    out, paths = detector_mod.process_detector(loaded, settings, rec)
    result.last_alert_at = time.time()
    result.alerts, result.dia_sources = len(paths), len(out.dia_sources)
    _keep_products(settings, pre, raw, out, rec)


def run_task(
    settings: settings_mod.Settings,
    task: task_mod.DetectorTask,
    env: Mapping[str, str] | None = None,
) -> int:
    """The pipeline container: returns its exit code; every outcome leaves its records.

    Writes ``<visit>_<detector>.metrics.json`` and ``.done`` in the spool, waits for the
    relay's status when a broker is configured, and writes the termination message.
    """
    from shutterline.pipeline import detector as detector_mod

    env = os.environ if env is None else env
    parent = _start_tracing(settings, env)
    data_id = {"instrument": task.spec.instrument, "band": task.spec.band}
    rec = stages.StageRecorder(
        attributes={"visit": task.visit, "detector": task.detector, **data_id}
    )
    result = report_mod.PodResult(task.visit, task.detector)
    # Under the pod span ("detector N", the telemetry sidecar's): this container's own span.
    name = "pipeline"
    with _TRACER.start_as_current_span(name, context=parent, attributes=rec.attributes) as span:
        try:
            _process(settings, task, rec, result)
        except Exception as exc:
            result.fail(exc, transient.exit_code(exc))
            span.set_status(trace.Status(trace.StatusCode.ERROR, result.reason))
            log.error(
                "visit %s detector %s: %s",
                task.visit,
                task.detector,
                result.reason,
                exc_info=None if isinstance(exc, exceptions.ShutterlineError) else exc,
            )
            detector_mod.discard_partial(settings.spool, task.visit, task.detector)
        span.set_attribute("shutterline.status", result.status)
    result.stages, result.quantities = rec.seconds, dict(rec.quantities)
    code = report_mod.finish(settings, result)
    report_mod.write_termination_message(result, env)
    _flush()
    return code
