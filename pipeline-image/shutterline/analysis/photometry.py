"""Photometric zero point and astrometric scatter of a detector against its reference stars.

The detector's stars are matched to the reference catalogue by position here (nearest
within a radius), not through the prompt pipeline's own match, so both values check the
prompt pipeline's calibration rather than repeat it. The zero point follows the simulator's
and DECam's convention: the AB magnitude that gives one electron per second.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.table import Table
from scipy.spatial import cKDTree

from shutterline.analysis import psfmap

__all__ = [
    "NJY_AB_ZERO_MAG",
    "Calibration",
    "match_reference",
    "measure_calibration",
    "robust_sigma",
]

#: AB magnitude of 1 nJy.
NJY_AB_ZERO_MAG = 31.4
_MAS_PER_RAD = 180.0 / np.pi * 3600e3


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Zero point and astrometry of one detector against its reference stars.

    Attributes
    ----------
    zero_point : float
        Median of ``m_ref + 2.5 log10(flux_e / exptime)`` over matched stars, AB mag.
    zero_point_scatter : float
        Robust standard deviation (1.4826 MAD) of the per-star zero points, mag.
    n_photometric : int
        Stars in the zero point.
    astrom_scatter_mas : float
        Robust RMS of the source-to-reference separations, milliarcseconds.
    astrom_offset_mas : tuple of float
        Median ``(dRA cos dec, dDec)`` of source minus reference, milliarcseconds.
    n_astrometric : int
        Matched stars in the astrometry.
    """

    zero_point: float
    zero_point_scatter: float
    n_photometric: int
    astrom_scatter_mas: float
    astrom_offset_mas: tuple[float, float]
    n_astrometric: int


def robust_sigma(values: np.ndarray) -> float:
    """1.4826 times the median absolute deviation (NaN for fewer than two values)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def match_reference(
    ra: np.ndarray, dec: np.ndarray, ref_ra: np.ndarray, ref_dec: np.ndarray, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest reference star within ``radius_arcsec`` of each position (degrees).

    Returns ``(index, matched)``: ``(n,)`` indices into the reference arrays and a bool mask.
    """
    if len(ref_ra) == 0 or len(ra) == 0:
        return np.zeros(len(ra), np.int64), np.zeros(len(ra), bool)
    tree = cKDTree(_unit(np.asarray(ref_ra), np.asarray(ref_dec)))
    chord = 2 * np.sin(np.radians(radius_arcsec / 3600.0) / 2)
    dist, index = tree.query(_unit(np.asarray(ra), np.asarray(dec)), distance_upper_bound=chord)
    matched = np.isfinite(dist)
    return np.where(matched, index, 0).astype(np.int64), matched


def measure_calibration(
    src: Table,
    refcat: Table,
    band: str,
    exptime: float,
    radius_arcsec: float = 1.0,
    min_snr: float = 20.0,
) -> Calibration:
    """Zero point and astrometric scatter of ``src`` (electrons) against ``refcat`` (nJy).

    Parameters
    ----------
    src : astropy.table.Table
        Calibrated sources: ``ra, dec`` (deg), ``flux`` (PSF flux, electrons), ``snr``,
        ``flags``, ``extendedness``.
    refcat : astropy.table.Table
        ``ra, dec`` (deg) and ``<band>_flux`` (nJy).
    exptime : float
        Exposure time, seconds.

    Raises
    ------
    ValueError
        The reference catalogue has no ``<band>_flux`` column, or ``exptime`` is not positive.
    """
    if f"{band}_flux" not in refcat.colnames:
        raise ValueError(f"reference catalogue has no {band}_flux column ({refcat.colnames})")
    if not exptime > 0:
        raise ValueError(f"exposure time must be positive, got {exptime}")
    stars = psfmap.psf_stars(src, min_snr)
    ra, dec = np.asarray(src["ra"])[stars], np.asarray(src["dec"])[stars]
    ref_ra, ref_dec = np.asarray(refcat["ra"], np.float64), np.asarray(refcat["dec"], np.float64)
    index, matched = match_reference(ra, dec, ref_ra, ref_dec, radius_arcsec)
    ri = index[matched]
    cosd = np.cos(np.radians(ref_dec[ri]))
    dra = (ra[matched] - ref_ra[ri] + 180.0) % 360.0 - 180.0
    dx, dy = np.radians(dra) * cosd * _MAS_PER_RAD, np.radians(dec[matched] - ref_dec[ri])
    dy = dy * _MAS_PER_RAD
    flux = np.asarray(src["flux"], np.float64)[stars][matched]
    ref_flux = np.ma.filled(np.ma.asarray(refcat[f"{band}_flux"], np.float64), np.nan)[ri]
    good = (flux > 0) & (ref_flux > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        zp = NJY_AB_ZERO_MAG - 2.5 * np.log10(ref_flux[good]) + 2.5 * np.log10(flux[good] / exptime)
    return Calibration(
        zero_point=float(np.median(zp)) if zp.size else float("nan"),
        zero_point_scatter=robust_sigma(zp),
        n_photometric=int(zp.size),
        # The RMS of a 2-D offset from its robust per-axis sigmas.
        astrom_scatter_mas=float(np.hypot(robust_sigma(dx), robust_sigma(dy))),
        astrom_offset_mas=(
            float(np.median(dx)) if dx.size else float("nan"),
            float(np.median(dy)) if dy.size else float("nan"),
        ),
        n_astrometric=int(dx.size),
    )
