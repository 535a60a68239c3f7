"""The pod span: its identity from the pod's environment and the id every container derives.

The telemetry sidecar records the span whose id is `tracing.pod_span_id` (trace id, pod
name), parented on the operator's root (``TRACEPARENT``). A tracer provider draws span ids
from one generator, so the sidecar's provider gets a `PodSpanIdGenerator` that hands out the
pod span's id once, for the span it opens first, and random ids after.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

from shutterline import exceptions

__all__ = ["PodIdentity", "PodSpanIdGenerator"]


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
        """Read the identity; raises `PermanentError` naming a malformed variable."""
        spec = _visit_spec(env.get("SHUTTERLINE_VISIT_SPEC", ""))
        return cls(
            pod_name=env.get("POD_NAME") or None,
            visit=int(spec["visitId"]) if "visitId" in spec else None,
            detector=_detector(env),
            instrument=spec.get("instrument"),
            band=spec.get("band"),
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


def _visit_spec(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise exceptions.PermanentError(f"SHUTTERLINE_VISIT_SPEC is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise exceptions.PermanentError("SHUTTERLINE_VISIT_SPEC is not a JSON object")
    return spec


def _detector(env: Mapping[str, str]) -> int | None:
    text = env.get("SHUTTERLINE_DETECTORS", "")
    if not text:
        return None
    index = env.get("JOB_COMPLETION_INDEX", "0") or "0"
    try:
        return int([d for d in text.split(",") if d.strip()][int(index)])
    except (ValueError, IndexError):
        raise exceptions.PermanentError(
            f"SHUTTERLINE_DETECTORS={text!r} has no detector at JOB_COMPLETION_INDEX={index!r}"
        ) from None
