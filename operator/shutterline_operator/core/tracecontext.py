"""The visit's root span as W3C trace context: derived from the Visit's uid (so every run of
the operator, before or after a restart, hands the same ids to the pods without first writing
them anywhere), stored on the Visit for people, parsed back."""

from __future__ import annotations

import hashlib
from typing import Any

from shutterline_operator.core import names

__all__ = ["make_traceparent", "parse_traceparent", "traceparent_of"]


def make_traceparent(trace_id: int, span_id: int) -> str:
    """``00-<trace id>-<span id>-01`` (sampled)."""
    return f"00-{trace_id:032x}-{span_id:016x}-01"


def parse_traceparent(text: str | None) -> tuple[int, int] | None:
    """(trace id, span id) of a ``traceparent``, None if it is not one."""
    parts = (text or "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id = int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    return (trace_id, span_id) if trace_id and span_id else None


def traceparent_of(visit: dict[str, Any]) -> str:
    """The root context of ``visit``: its ``traceparent`` annotation when it has a valid one
    (Visits of earlier operator versions), else ids hashed from its uid (uids are random)."""
    annotations = visit["metadata"].get("annotations") or {}
    stored = annotations.get(names.ANNOTATION_TRACEPARENT)
    if parse_traceparent(stored) is not None:
        return str(stored)
    digest = hashlib.sha256(str(visit["metadata"]["uid"]).encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return make_traceparent(trace_id, span_id)
