"""Typed access to raw header keywords; a missing or unusable one raises `MalformedRawError`."""

from __future__ import annotations

import math

from astropy.io import fits

from shutterline import exceptions
from shutterline.camera import filters, geometry, rawformat, rawtime

__all__ = [
    "describe",
    "require_band",
    "require_float",
    "require_int",
    "require_section",
    "require_start_tai",
    "require_str",
]


def describe(hdul: fits.HDUList) -> str:
    """A name for a raw in error messages: its file name, else its exposure and detector."""
    name = hdul.filename()
    if name:
        return str(name)
    primary = hdul[0].header
    ccd = hdul[1].header.get("CCDNUM", "?") if len(hdul) > 1 else "?"
    return f"<raw EXPNUM={primary.get('EXPNUM', '?')} CCDNUM={ccd}>"


def _get(header: fits.Header, key: str, desc: str) -> object:
    if key not in header:
        raise exceptions.MalformedRawError(desc, key)
    return header[key]


def require_float(header: fits.Header, key: str, desc: str) -> float:
    """``header[key]`` as a finite float."""
    value = _get(header, key, desc)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise exceptions.MalformedRawError(desc, key, f"has unusable value {value!r}")
    return float(value)


def require_int(header: fits.Header, key: str, desc: str) -> int:
    """``header[key]`` as an int (a float with an integral value is accepted)."""
    value = require_float(header, key, desc)
    if value != int(value):
        raise exceptions.MalformedRawError(desc, key, f"is not an integer: {value!r}")
    return int(value)


def require_str(header: fits.Header, key: str, desc: str) -> str:
    """``header[key]`` as a string, stripped."""
    value = _get(header, key, desc)
    if not isinstance(value, str):
        raise exceptions.MalformedRawError(desc, key, f"is not a string: {value!r}")
    return value.strip()


def require_band(primary: fits.Header, desc: str) -> str:
    """The band of the physical filter in ``FILTER`` (`filters.NO_FILTER` for a bias)."""
    value = require_str(primary, "FILTER", desc)
    if require_str(primary, "OBSTYPE", desc).lower() == rawformat.OBSTYPE_BIAS:
        return filters.NO_FILTER
    try:
        return filters.band_of(value)
    except ValueError as exc:
        raise exceptions.MalformedRawError(desc, "FILTER", f"{value!r} {exc}") from exc


def require_start_tai(primary: fits.Header, desc: str) -> float:
    """The exposure start (``MJD-OBS`` in ``TIMESYS``) as MJD in TAI."""
    require_float(primary, "MJD-OBS", desc)
    try:
        return rawtime.start_tai(primary)
    except rawtime.HeaderTimeError as exc:
        raise exceptions.MalformedRawError(desc, exc.keyword, str(exc)) from exc


def require_section(
    header: fits.Header, key: str, desc: str, shape: tuple[int, int]
) -> geometry.Section:
    """``header[key]`` parsed as a FITS section lying inside an array of ``shape`` (ny, nx)."""
    value = require_str(header, key, desc)
    try:
        section = geometry.parse_section(value)
    except ValueError as exc:
        raise exceptions.MalformedRawError(desc, key, f"is not a section: {value!r}") from exc
    if section.x1 > shape[1] or section.y1 > shape[0]:
        raise exceptions.MalformedRawError(
            desc, key, f"{value} lies outside the {shape[1]} x {shape[0]} pixel array"
        )
    return section
