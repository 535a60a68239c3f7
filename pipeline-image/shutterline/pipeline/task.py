"""What one worker pod is asked to do: its visit's announcement and its detector.

The operator hands the pod the Visit's ``spec`` as JSON (``SHUTTERLINE_VISIT_SPEC``), the
visit's detectors (``SHUTTERLINE_DETECTORS``) and, through the Indexed Job, its position in
that list (``JOB_COMPLETION_INDEX``). `DetectorTask.from_env` reads them once, at start-up;
a bad value is a `PermanentError` naming the variable and the field, so the pod fails at
once (exit 65) instead of waiting for a raw it could never process.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from astropy.time import Time

from shutterline import exceptions

__all__ = [
    "ENV_DETECTORS",
    "ENV_INDEX",
    "ENV_SPEC",
    "Boresight",
    "DetectorTask",
    "VisitSpec",
    "detector_list",
]

ENV_SPEC = "SHUTTERLINE_VISIT_SPEC"
ENV_DETECTORS = "SHUTTERLINE_DETECTORS"
ENV_INDEX = "JOB_COMPLETION_INDEX"

#: Default deadline after shutter close, seconds (the CRD's default).
DEFAULT_DEADLINE_S = 60.0


class _SpecError(ValueError):
    """A field of the spec is missing or unusable; the message names it."""


@dataclasses.dataclass(frozen=True)
class Boresight:
    """Telescope pointing: ICRS ``ra``, ``dec`` and the focal plane's ``rotation``, degrees.

    ``rotation`` turns the focal plane on the sky by that position angle (north through
    east) from its orientation at rotation 0.
    """

    ra: float
    dec: float
    rotation: float = 0.0


@dataclasses.dataclass(frozen=True)
class VisitSpec:
    """A Visit's ``spec`` (the next-visit announcement), parsed and checked.

    ``observation_start`` is the shutter opening (UTC, timezone-aware); ``raw_uri`` a
    ``str.format`` template with ``{visit}`` and ``{detector}`` fields.
    """

    instrument: str
    visit_id: int
    band: str
    physical_filter: str
    boresight: Boresight
    observation_start: datetime.datetime
    exposure_time: float
    raw_uri: str
    detectors: tuple[int, ...] | None = None
    deadline_seconds: float = DEFAULT_DEADLINE_S
    priority: int = 0

    @property
    def mjd_tai(self) -> float:
        """Shutter opening as MJD on the TAI scale (the pipeline's time system)."""
        return float(Time(self.observation_start, scale="utc").tai.mjd)

    @property
    def shutter_close(self) -> datetime.datetime:
        """When the exposure ends (UTC)."""
        return self.observation_start + datetime.timedelta(seconds=self.exposure_time)

    def raw_uri_for(self, detector: int) -> str:
        """Where the raw of ``detector`` lands."""
        return self.raw_uri.format(visit=self.visit_id, detector=int(detector))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> VisitSpec:
        """Parse a spec as the CRD spells it (camelCase).

        Raises
        ------
        ValueError
            Naming the first missing or unusable field.
        """
        if not isinstance(spec, Mapping):
            raise _SpecError(f"the spec must be a JSON object, got {type(spec).__name__}")
        bore = _field(spec, "boresight", dict)
        parsed = cls(
            instrument=_field(spec, "instrument", _text),
            visit_id=_field(spec, "visitId", _count),
            band=_field(spec, "band", _text),
            physical_filter=_optional(spec, "physicalFilter", _text, spec.get("band")),
            boresight=Boresight(
                ra=_field(bore, "ra", _number(0.0, 360.0), "boresight.ra"),
                dec=_field(bore, "dec", _number(-90.0, 90.0), "boresight.dec"),
                rotation=_optional(bore, "rotation", _number(-360.0, 360.0), 0.0, "boresight."),
            ),
            observation_start=_field(spec, "observationStart", _timestamp),
            exposure_time=_field(spec, "exposureTime", _number(0.0, 1e5)),
            raw_uri=_field(spec, "rawUri", _template),
            detectors=_optional(spec, "detectors", _detector_list, None),
            deadline_seconds=_optional(
                spec, "deadlineSeconds", _number(0.0, 1e6), DEFAULT_DEADLINE_S
            ),
            priority=_optional(spec, "priority", _integer, 0),
        )
        parsed.raw_uri_for(0)  # the template formats, or _template has raised
        return parsed

    def to_dict(self) -> dict[str, Any]:
        """The spec as the CRD spells it (the inverse of `from_dict`)."""
        out: dict[str, Any] = {
            "instrument": self.instrument,
            "visitId": self.visit_id,
            "band": self.band,
            "physicalFilter": self.physical_filter,
            "boresight": dataclasses.asdict(self.boresight),
            "observationStart": _rfc3339(self.observation_start),
            "exposureTime": self.exposure_time,
            "rawUri": self.raw_uri,
            "deadlineSeconds": self.deadline_seconds,
            "priority": self.priority,
        }
        if self.detectors is not None:
            out["detectors"] = list(self.detectors)
        return out


@dataclasses.dataclass(frozen=True)
class DetectorTask:
    """One pod's work: detector ``detector`` (the ``index``-th of the Job) of ``spec``."""

    spec: VisitSpec
    detector: int
    index: int

    @property
    def visit(self) -> int:
        """The visit id."""
        return self.spec.visit_id

    @property
    def raw_uri(self) -> str:
        """Where this detector's raw lands."""
        return self.spec.raw_uri_for(self.detector)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DetectorTask:
        """The task of this pod, from the variables the operator sets.

        Raises
        ------
        shutterline.exceptions.PermanentError
            A variable is missing or unusable (the message names it, and the spec's field).
        """
        env = os.environ if env is None else env
        try:
            spec = VisitSpec.from_dict(json.loads(_required(env, ENV_SPEC)))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise exceptions.PermanentError(f"{ENV_SPEC}: {exc}") from None
        detectors = _env_value(env, ENV_DETECTORS, detector_list)
        index = _env_value(env, ENV_INDEX, _count)
        if index >= len(detectors):
            raise exceptions.PermanentError(
                f"{ENV_INDEX}={index} but {ENV_DETECTORS} lists {len(detectors)} detectors"
            )
        if spec.detectors is not None and detectors[index] not in spec.detectors:
            raise exceptions.PermanentError(
                f"{ENV_DETECTORS}[{index}]={detectors[index]} is not among the spec's "
                f"detectors {list(spec.detectors)}"
            )
        return cls(spec, detectors[index], index)


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value.strip():
        raise exceptions.PermanentError(f"missing environment variable {name}")
    return value


def _env_value(env: Mapping[str, str], name: str, parse: Any) -> Any:
    text = _required(env, name)
    try:
        return parse(text)
    except (ValueError, TypeError) as exc:
        raise exceptions.PermanentError(f"{name}={text!r}: {exc}") from None


def _field(spec: Mapping[str, Any], key: str, parse: Any, label: str | None = None) -> Any:
    label = label or key
    if key not in spec or spec[key] is None:
        raise _SpecError(f"spec.{label} is missing")
    try:
        if parse is dict:
            if not isinstance(spec[key], Mapping):
                raise _SpecError("not an object")
            return spec[key]
        return parse(spec[key])
    except (ValueError, TypeError) as exc:
        raise _SpecError(f"spec.{label}={spec[key]!r}: {exc}") from None


def _optional(spec: Mapping[str, Any], key: str, parse: Any, default: Any, prefix: str = "") -> Any:
    if spec.get(key) is None:
        return default
    return _field(spec, key, parse, prefix + key)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("not a non-empty string")
    return value.strip()


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not an integer")
    if isinstance(value, str):
        return int(value.strip())
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError("not an integer")


def _count(value: Any) -> int:
    number = _integer(value)
    if number < 0:
        raise ValueError("negative")
    return number


def _number(lo: float, hi: float) -> Any:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("not a number")
        number = float(value)
        if not math.isfinite(number) or not lo <= number <= hi:
            raise ValueError(f"outside [{lo:g}, {hi:g}]")
        return number

    return parse


def _timestamp(value: Any) -> datetime.datetime:
    if not isinstance(value, str):
        raise ValueError("not an RFC 3339 string")
    when = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("has no time zone (RFC 3339 needs one, e.g. 'Z')")
    return when.astimezone(datetime.UTC)


def _template(value: Any) -> str:
    text = _text(value)
    try:
        text.format(visit=0, detector=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"not a template over {{visit}} and {{detector}} ({exc!r})") from None
    return text


def _detector_list(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("not a non-empty list")
    return tuple(_count(v) for v in value)


def detector_list(text: str) -> tuple[int, ...]:
    """``SHUTTERLINE_DETECTORS`` as detectors: comma-separated (the prompt Job's) or a JSON list
    (the analysis Job's). Raises `ValueError` naming what is wrong."""
    text = text.strip()
    items = json.loads(text) if text.startswith("[") else text.split(",")
    if not isinstance(items, list):
        raise ValueError("not a list of detectors")
    listed = [str(x).strip() for x in items if str(x).strip()]
    if not listed:
        raise ValueError("no detector listed")
    return tuple(_count(x) for x in listed)


def _rfc3339(when: datetime.datetime) -> str:
    text = when.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
