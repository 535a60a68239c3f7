"""The pod span: its identity from the pod's environment and the id every container derives.

The telemetry sidecar records the span whose id is `tracing.pod_span_id` (trace id, pod
name), parented on the operator's root (``TRACEPARENT``). A tracer provider draws span ids
from one generator, so the sidecar's provider gets a `PodSpanIdGenerator` that hands out the
pod span's id once, for the span it opens first, and random ids after.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

__all__ = ["PodIdentity", "PodSpanIdGenerator"]

log = logging.getLogger(__name__)


class PodSpanIdGenerator(IdGenerator):
    """Span ids: ``first`` once, then random (trace ids are always random)."""

    def __init__(self, first: int) -> None:
        self._first: int | None = first
        self._random = RandomIdGenerator()
        self._lock = threading.Lock()

    def generate_span_id(self) -> int:
        with self._lock:
            first, self._first = self._first, None
        return first if first is not None else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        return self._random.generate_trace_id()


@dataclasses.dataclass(frozen=True)
class PodIdentity:
    """Which pod this is and which detector it processes, from the operator's variables.

    Attributes
    ----------
    pod_name : str or None
        ``POD_NAME`` (downward API); unique per attempt, so a retried detector's pod gets a
        span of its own.
    visit, detector : int or None
        ``SHUTTERLINE_VISIT_SPEC``'s ``visitId`` and the ``JOB_COMPLETION_INDEX``-th entry of
        ``SHUTTERLINE_DETECTORS``.
    instrument, band : str or None
        From the Visit spec.
    """

    pod_name: str | None = None
    visit: int | None = None
    detector: int | None = None
    instrument: str | None = None
    band: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PodIdentity:
        """Read the identity; a malformed variable is logged and its fields left out.

        Lenient on purpose, unlike the pipeline's `shutterline.pipeline.task` (which fails
        the pod with exit 65 and names the variable): the pod span of a pod that fails
        that way is what an SRE opens to see why, so it must still be recorded.
        """
        spec = _visit_spec(env.get("SHUTTERLINE_VISIT_SPEC", ""))
        visit = spec.get("visitId")
        return cls(
            pod_name=env.get("POD_NAME") or None,
            visit=visit if isinstance(visit, int) else None,
            detector=_detector(env),
            instrument=_text(spec.get("instrument")),
            band=_text(spec.get("band")),
        )

    def data_id(self) -> dict[str, Any]:
        """The known parts of the data id, as span and metric attributes."""
        keys = ("visit", "detector", "instrument", "band")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    @property
    def span_name(self) -> str:
        """``detector <d>``, the name the trace shows for the pod."""
        if self.detector is not None:
            return f"detector {self.detector}"
        return f"pod {self.pod_name or '?'}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _visit_spec(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        log.warning("SHUTTERLINE_VISIT_SPEC is not JSON (%s): the pod span has no visit", exc)
        return {}
    if not isinstance(spec, dict):
        log.warning("SHUTTERLINE_VISIT_SPEC is not a JSON object: the pod span has no visit")
        return {}
    return spec


def _detector(env: Mapping[str, str]) -> int | None:
    text = env.get("SHUTTERLINE_DETECTORS", "")
    if not text or text.lstrip().startswith("["):
        return None  # a JSON list is the analysis pod's: the whole visit, no one detector
    index = env.get("JOB_COMPLETION_INDEX", "0") or "0"
    try:
        return int([d for d in text.split(",") if d.strip()][int(index)])
    except (ValueError, IndexError):
        log.warning(
            "SHUTTERLINE_DETECTORS=%r has no detector at JOB_COMPLETION_INDEX=%r", text, index
        )
        return None
