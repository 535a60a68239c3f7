"""The analysis pod: one per visit, after its prompt pods, at a lower priority.

Reads the internal products the prompt pods exported to the central repository (``calexp``,
``src``, ``difference_image``, ``dia_source``: `NEEDED_EXPORTS`), the reference stars under
each detector and the detectors' records on the metrics topic; measures the QA values
(`shutterline.analysis`); writes one ``qa`` record per detector and one ``qaVisit`` record to
the repository (RUN ``SimDECam/qa/<visit>``, replaced whole when the visit is analysed
again) and the same records on the metrics topic; ends with its termination message
``{"qa": {...}, "report": "<URI of the qaVisit record>"}`` (docs/architecture.md, "The
analysis pod"). A detector whose products are missing gets a record naming them; a visit
with no products at all is a permanent error (65), a service fault a retriable one (75).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace

from shutterline import exceptions
from shutterline.analysis import records as qa_records
from shutterline.pipeline import qatopic
from shutterline.pipeline import records as pod_records
from shutterline.pipeline import settings as settings_mod
from shutterline.pipeline import task as task_mod
from shutterline.telemetry import tracing

__all__ = ["NEEDED_EXPORTS", "AnalysisResult", "VisitTask", "analyze_visit", "run_analysis"]

log = logging.getLogger(__name__)
_TRACER = trace.get_tracer("shutterline.analysis")

#: The dataset types the prompt pods must export (``PromptConfig.export``) for every value.
NEEDED_EXPORTS = ("calexp", "src", "difference_image", "dia_source")
#: Seconds to wait for the broker when reading or publishing records.
_KAFKA_TIMEOUT_S = 60.0


@dataclasses.dataclass(frozen=True)
class VisitTask:
    """The analysis pod's work: every detector of one visit."""

    spec: task_mod.VisitSpec
    detectors: tuple[int, ...]

    @property
    def visit(self) -> int:
        """The visit id."""
        return self.spec.visit_id

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VisitTask:
        """The visit and its detectors from ``SHUTTERLINE_VISIT_SPEC`` and
        ``SHUTTERLINE_DETECTORS`` (comma-separated, as the prompt Job's, or a JSON list).

        Raises
        ------
        shutterline.exceptions.PermanentError
            A variable is missing or unusable (the message names it).
        """
        env = os.environ if env is None else env
        text = env.get(task_mod.ENV_SPEC, "")
        if not text.strip():
            raise exceptions.PermanentError(f"missing environment variable {task_mod.ENV_SPEC}")
        try:
            spec = task_mod.VisitSpec.from_dict(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise exceptions.PermanentError(f"{task_mod.ENV_SPEC}: {exc}") from None
        listed = env.get(task_mod.ENV_DETECTORS, "").strip()
        if not listed:
            if spec.detectors is None:
                raise exceptions.PermanentError(
                    f"missing environment variable {task_mod.ENV_DETECTORS} "
                    "(and the spec lists no detectors)"
                )
            return cls(spec, spec.detectors)
        try:
            return cls(spec, task_mod.detector_list(listed))
        except ValueError as exc:
            raise exceptions.PermanentError(f"{task_mod.ENV_DETECTORS}={listed!r}: {exc}") from None


@dataclasses.dataclass
class AnalysisResult:
    """What the analysis pod leaves behind."""

    visit: int
    status: str = "succeeded"
    reason: str = ""
    exit_code: int = 0
    qa: dict[str, Any] = dataclasses.field(default_factory=dict)
    report: str | None = None
    detectors: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    visit_record: dict[str, Any] = dataclasses.field(default_factory=dict)

    def termination_message(self) -> str:
        """``{"qa": {...}, "report": uri}``, plus status, reason and exit code (<= 4 KiB)."""
        message = {
            "status": self.status,
            "reason": self.reason[:1024],
            "exitCode": self.exit_code,
            "qa": self.qa,
            "report": self.report,
        }
        return json.dumps(message)


def _settings(env: Mapping[str, str]) -> settings_mod.Settings:
    """The pod's settings; the analysis opens no APDB, so the operator need not set one."""
    apdb = settings_mod.ENV["apdb"]
    return settings_mod.Settings.from_env({**env, apdb: env.get(apdb) or "unused"})


EXPECTED_DIA_ENV = "SHUTTERLINE_QA_EXPECTED_DIA_PER_DEG2"


def analysis_config(env: Mapping[str, str]) -> qa_records.AnalysisConfig:
    """The measurements' knobs from the pod's environment (PromptConfig ``settings`` or a
    Visit's overrides): the DIA rate an instrument expects is its own, not a constant."""
    text = env.get(EXPECTED_DIA_ENV)
    if not text:
        return qa_records.AnalysisConfig()
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and rate > 0):
        raise exceptions.PermanentError(
            f"{EXPECTED_DIA_ENV}={text!r}: expected a positive number of DIA sources per "
            "square degree and visit"
        )
    return qa_records.AnalysisConfig(expected_dia_per_deg2=rate)


def _records_of(
    settings: settings_mod.Settings,
    job: VisitTask,
    metrics: Mapping[int, Any] | None,
    cfg: qa_records.AnalysisConfig,
) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """Measure every detector, write the records; ``(detector records, visit record, uri)``."""
    from shutterline.butler import repo, transient
    from shutterline.pipeline import qaproducts

    with transient.retriable(f"opening the repository {settings.repo}"):
        butler = repo.open_repo(settings.repo, writeable=True)
        qaproducts.register(butler)
    close = job.spec.shutter_close.timestamp()
    out = []
    for detector in job.detectors:
        with _TRACER.start_as_current_span("analyze detector", attributes={"detector": detector}):
            with transient.retriable(f"reading visit {job.visit} detector {detector}"):
                products = qaproducts.read_products(butler, job.visit, detector)
            products.metrics = (metrics or {}).get(detector)
            out.append(qa_records.detector_record(products, close, cfg))
    if all("calexp" in r["missing"] and "dia" in r["missing"] for r in out):
        raise exceptions.MissingInputError(
            "calexp", {"visit": job.visit}, f"no detector of {list(job.detectors)} exported one"
        )
    visit = qa_records.visit_record(job.visit, out, {"instrument": job.spec.instrument})
    with transient.retriable(f"writing the QA records of visit {job.visit}"):
        uri = qaproducts.write_records(butler, job.visit, out, visit)
    return out, visit, uri


def analyze_visit(
    settings: settings_mod.Settings,
    job: VisitTask,
    metrics: Mapping[int, Any] | None = None,
    cfg: qa_records.AnalysisConfig | None = None,
) -> AnalysisResult:
    """Analyse one visit: measure, write to the repository, publish to the metrics topic.

    ``metrics`` are the detectors' prompt records when the caller has them (the embedded
    run); otherwise they are read from the metrics topic when a broker is configured.
    """
    if metrics is None and settings.kafka_bootstrap:
        metrics = qatopic.read_metrics(
            settings.kafka_bootstrap,
            settings.metrics_topic,
            job.visit,
            job.detectors,
            job.spec.observation_start.timestamp(),
            _KAFKA_TIMEOUT_S,
        )
    detectors, visit, uri = _records_of(settings, job, metrics, cfg or qa_records.AnalysisConfig())
    if settings.kafka_bootstrap:
        keyed = [(f"{r['visit']}_{r['detector']}", r) for r in detectors]
        keyed.append((str(job.visit), visit))
        qatopic.publish_records(
            settings.kafka_bootstrap, settings.metrics_topic, keyed, _KAFKA_TIMEOUT_S
        )
    return AnalysisResult(
        job.visit,
        qa=qa_records.summary(visit),
        report=uri,
        detectors=detectors,
        visit_record=visit,
    )


def run_analysis(env: Mapping[str, str] | None = None, argv: Sequence[str] = ()) -> int:
    """The analysis container: settings and task from ``env``; returns the exit code.

    Every outcome leaves its termination message; a failure's reason names what failed.
    """
    from shutterline.butler import transient

    env = os.environ if env is None else env
    result = AnalysisResult(-1)
    try:
        settings = _settings(env)
        job = VisitTask.from_env(env)
        result.visit = job.visit
        cfg = analysis_config(env)
        tracing.configure("shutterline-analysis", settings.otlp_endpoint, settings.spans_path)
        # No telemetry sidecar records a pod span here: the span hangs under the visit's.
        parent = tracing.context_from_traceparent(env.get("TRACEPARENT") or None)
        attributes = {"visit": job.visit, "detectors": len(job.detectors)}
        with _TRACER.start_as_current_span("analysis", context=parent, attributes=attributes):
            done = analyze_visit(settings, job, cfg=cfg)
        done.visit = job.visit
        result = done
    except Exception as exc:
        result.status, result.exit_code = "failed", transient.exit_code(exc)
        result.reason = f"{type(exc).__name__}: {exc}"
        log.error(
            "analysis of visit %s: %s",
            result.visit,
            result.reason,
            exc_info=None if isinstance(exc, exceptions.ShutterlineError) else exc,
        )
    pod_records.write_termination_message(result, env)
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()
    return result.exit_code
