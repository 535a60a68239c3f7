"""Semantic checks of a Visit against its PromptConfig and its siblings (the API server has
already checked the schema); a failure becomes the Visit's ``Rejected`` phase."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable
from typing import Any

from shutterline_operator.core import timing

__all__ = ["Rejection", "detectors_of", "validate"]


@dataclasses.dataclass(frozen=True)
class Rejection:
    """Why a Visit is refused: a CamelCase ``reason`` (condition and Event) and a message."""

    reason: str
    message: str


def detectors_of(spec: dict[str, Any], camera: Collection[int]) -> list[int]:
    """The detectors the Visit asks for, in its order; every detector of the camera if none."""
    asked = spec.get("detectors")
    return [int(d) for d in asked] if asked else sorted(camera)


def validate(
    visit: dict[str, Any],
    config: dict[str, Any] | None,
    camera: Collection[int] | None,
    siblings: Iterable[dict[str, Any]],
    now: dt.datetime,
) -> Rejection | None:
    """The first reason to refuse ``visit``, or None when it may run.

    Parameters
    ----------
    visit
        The Visit object (``metadata``, ``spec``).
    config
        The PromptConfig of the Visit's instrument, None if there is none.
    camera
        Detector numbers of the instrument's camera, None if the camera is unknown.
    siblings
        Other Visits of the namespace (a duplicate visit id is refused for the later one).
    now
        The current time (UTC).
    """
    spec = visit["spec"]
    instrument = spec["instrument"]
    if config is None:
        return Rejection(
            "UnknownInstrument", f"no PromptConfig for instrument {instrument!r} in this namespace"
        )
    if camera is None:
        return Rejection("UnknownInstrument", f"no camera layout for instrument {instrument!r}")
    missing = sorted(set(detectors_of(spec, camera)) - set(camera))
    if missing:
        listed = ", ".join(str(d) for d in missing)
        return Rejection(
            "UnknownDetector", f"spec.detectors: {instrument} has no detector {listed}"
        )
    deadline = timing.deadline_at(spec)
    if deadline <= now:
        late = (now - deadline).total_seconds()
        return Rejection(
            "DeadlinePassed",
            f"deadline {timing.format_time(deadline)} passed {late:.0f} s before the Visit "
            "was seen (spec.observationStart + exposureTime + deadlineSeconds)",
        )
    earlier = _earlier_duplicate(visit, siblings)
    if earlier is not None:
        return Rejection(
            "DuplicateVisit",
            f"visit {spec['visitId']} of {instrument} is already Visit {earlier!r}",
        )
    return None


def _earlier_duplicate(visit: dict[str, Any], siblings: Iterable[dict[str, Any]]) -> str | None:
    """The name of the oldest older, not rejected Visit with the same instrument and visit id
    (the oldest, so that the answer does not depend on the order of ``siblings``)."""
    meta, spec = visit["metadata"], visit["spec"]
    mine = (str(meta.get("creationTimestamp", "")), str(meta["name"]))
    oldest: tuple[str, str] | None = None
    for other in siblings:
        o_meta, o_spec = other["metadata"], other.get("spec") or {}
        if o_meta["name"] == meta["name"] or o_meta.get("deletionTimestamp"):
            continue
        if (o_spec.get("instrument"), o_spec.get("visitId")) != (
            spec["instrument"],
            spec["visitId"],
        ):
            continue
        if (other.get("status") or {}).get("phase") == "Rejected":
            continue
        theirs = (str(o_meta.get("creationTimestamp", "")), str(o_meta["name"]))
        if theirs < mine and (oldest is None or theirs < oldest):
            oldest = theirs
    return None if oldest is None else oldest[1]
