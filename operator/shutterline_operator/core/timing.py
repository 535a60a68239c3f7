"""Times of a visit: RFC 3339 parsing, shutter close, the deadline."""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["DEFAULT_DEADLINE_S", "deadline_at", "format_time", "parse_time", "shutter_close"]

DEFAULT_DEADLINE_S = 60


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 time (``Z`` or an offset) as an aware UTC datetime.

    Raises ``ValueError`` naming the text when it is not one.
    """
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    """``value`` as RFC 3339 UTC with a ``Z`` (seconds, as Kubernetes writes times)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shutter_close(spec: dict[str, Any]) -> dt.datetime:
    """Shutter close of the Visit ``spec``: observation start plus the exposure time."""
    start = parse_time(str(spec["observationStart"]))
    return start + dt.timedelta(seconds=float(spec["exposureTime"]))


def deadline_at(spec: dict[str, Any]) -> dt.datetime:
    """When the visit must be done: ``deadlineSeconds`` after shutter close."""
    seconds = float(spec.get("deadlineSeconds", DEFAULT_DEADLINE_S))
    return shutter_close(spec) + dt.timedelta(seconds=seconds)
