"""The visit's root span as W3C trace context: made once, stored on the Visit, parsed back."""

from __future__ import annotations

__all__ = ["make_traceparent", "parse_traceparent"]


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
