"""Raw headers: validation of the required keywords, and the dimension records they imply.

Every required keyword of the raw format (``shutterline.camera.rawformat``) is checked for
presence and a usable value before anything is written to a repository; the first problem
raises `MalformedRawError` naming the file and the keyword.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, FITSFixedWarning

from shutterline import exceptions
from shutterline.butler import instrument, names
from shutterline.camera import filters, geometry, layout, rawformat, rawtime

__all__ = ["RawInfo", "read_raw_info"]

_OBSTYPES = (rawformat.OBSTYPE_BIAS, rawformat.OBSTYPE_FLAT, rawformat.OBSTYPE_SCIENCE)


@dataclass(frozen=True)
class RawInfo:
    """What ingest needs from one raw file.

    ``mjd`` is the exposure start in TAI, whatever the header's ``TIMESYS``.
    ``corners`` are the ICRS corners ``(4, 2)`` in degrees of the full raw pixel grid
    (overscan included) through the raw's approximate WCS; None for non-science exposures.
    """

    path: str
    exposure: int
    detector: int
    mjd: float
    exptime: float
    physical_filter: str
    obstype: str
    tel_ra: float
    tel_dec: float
    airmass: float
    corners: np.ndarray | None

    @property
    def is_science(self) -> bool:
        """True for on-sky exposures, which become visits."""
        return self.obstype == rawformat.OBSTYPE_SCIENCE

    @property
    def obs_id(self) -> str:
        """The exposure's observation id, unique in the instrument."""
        return f"{names.INSTRUMENT}_{self.exposure:08d}"

    @property
    def data_id(self) -> dict[str, Any]:
        """The raw dataset's data id."""
        return {
            "instrument": names.INSTRUMENT,
            "exposure": self.exposure,
            "detector": self.detector,
        }


def _get(path: str, header: fits.Header, key: str, convert: Callable[[Any], Any]) -> Any:
    if key not in header or header[key] is None or header[key] == "":
        raise exceptions.MalformedRawError(path, key)
    try:
        value = convert(header[key])
    except (TypeError, ValueError) as exc:
        raise exceptions.MalformedRawError(
            path, key, f"has unusable value {header[key]!r}"
        ) from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise exceptions.MalformedRawError(path, key, f"is not finite: {header[key]!r}")
    return value


def _in_range(lo: float, hi: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        number = float(value)
        if not lo <= number <= hi:
            raise ValueError(f"outside [{lo}, {hi}]")
        return number

    return convert


def _exposure_id(value: Any) -> int:
    if isinstance(value, bool) or int(value) != value:
        raise ValueError("not an integer")
    number = int(value)
    if not 0 <= number < instrument.EXPOSURE_MAX:
        raise ValueError("outside the exposure id range")
    return number


def _obstype(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in _OBSTYPES:
        raise ValueError(f"not one of {_OBSTYPES}")
    return text


def _physical_filter(obstype: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        # A bias sees no light: whatever stands in the beam, it has no band.
        if obstype == rawformat.OBSTYPE_BIAS:
            return instrument.NO_FILTER
        return filters.band_of(value)

    return convert


def _detector(camera: layout.Camera) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        ccdnum = _exposure_id(value)
        try:
            camera.detector(ccdnum)
        except KeyError as exc:
            raise ValueError(str(exc)) from exc
        return ccdnum

    return convert


def _check_detector_keys(
    path: str, header: fits.Header, ccdnum: int, camera: layout.Camera
) -> None:
    detpos = _get(path, header, "DETPOS", lambda v: str(v).strip())
    if detpos != camera.detector(ccdnum).detpos:
        raise exceptions.MalformedRawError(
            path,
            "DETPOS",
            f"is {detpos!r} but CCDNUM {ccdnum} is {camera.detector(ccdnum).detpos!r}",
        )
    for amp in rawformat.AMPLIFIERS:
        for stem in ("DATASEC", "BIASSEC"):
            _get(path, header, rawformat.amp_key(stem, amp), geometry.parse_section)
        for stem in ("GAIN", "RDNOISE", "SATURAT"):
            _get(path, header, rawformat.amp_key(stem, amp), _in_range(0.0, 1e9))


def _corners(path: str, header: fits.Header) -> np.ndarray:
    for key in rawformat.WCS_KEYS:
        _get(path, header, key, str if key.startswith("CTYPE") else float)
    if not str(header["CTYPE1"]).endswith("TAN") or not str(header["CTYPE2"]).endswith("TAN"):
        raise exceptions.MalformedRawError(path, "CTYPE1", "is not a TAN projection")
    nx = _get(path, header, "NAXIS1", int)
    ny = _get(path, header, "NAXIS2", int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    xs = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    ys = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    corners = np.column_stack([ra, dec])
    if not np.all(np.isfinite(corners)):
        raise exceptions.MalformedRawError(path, "CD1_1", "gives a WCS with no valid sky corners")
    return corners


def _read_headers(path: str) -> tuple[fits.Header, fits.Header]:
    try:
        with fits.open(path, memmap=False) as hdul:
            if len(hdul) < 2:
                raise exceptions.MalformedRawError(path, "CCDNUM", "no image extension in the file")
            return hdul[0].header.copy(), hdul[1].header.copy()
    except OSError as exc:
        raise exceptions.MalformedRawError(
            path, "SIMPLE", f"not a readable FITS file ({exc})"
        ) from exc


def read_raw_info(path: str | Path, camera: layout.Camera = layout.CAMERA) -> RawInfo:
    """Validate a raw's headers and extract what ingest needs.

    Raises
    ------
    shutterline.exceptions.MalformedRawError
        The file is not FITS, or a required keyword is missing or unusable.
    """
    path = str(path)
    primary, image = _read_headers(path)
    obstype = _get(path, primary, "OBSTYPE", _obstype)
    needed = rawformat.required_primary_keys(obstype)

    def get(key: str, convert: Callable[[Any], Any], default: Any = math.nan) -> Any:
        # A keyword the role does not need is read if usable, else left at its default.
        if key in needed:
            return _get(path, primary, key, convert)
        try:
            return _get(path, primary, key, convert)
        except exceptions.MalformedRawError:
            return default

    get("MJD-OBS", _in_range(0.0, 1e6))
    get("DATE-OBS", lambda v: Time(str(v), format="isot"))
    try:
        mjd = rawtime.start_tai(primary)
    except rawtime.HeaderTimeError as exc:
        raise exceptions.MalformedRawError(path, exc.keyword, str(exc)) from exc
    ccdnum = _get(path, image, "CCDNUM", _detector(camera))
    _check_detector_keys(path, image, ccdnum, camera)
    is_science = obstype == rawformat.OBSTYPE_SCIENCE
    return RawInfo(
        path=path,
        exposure=get("EXPNUM", _exposure_id),
        detector=ccdnum,
        mjd=mjd,
        exptime=get("EXPTIME", _in_range(0.0, 1e5)),
        physical_filter=get("FILTER", _physical_filter(obstype), instrument.NO_FILTER),
        obstype=obstype,
        tel_ra=get("TELRA", _in_range(0.0, 360.0)),
        tel_dec=get("TELDEC", _in_range(-90.0, 90.0)),
        airmass=get("AIRMASS", _in_range(0.0 if not is_science else 1.0, 100.0)),
        corners=_corners(path, image) if rawformat.needs_wcs(obstype) else None,
    )
