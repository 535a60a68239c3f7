"""Difference-image quality: residuals left at bright stars, dipoles, the DIA source rate.

A static star should vanish from a good difference image. At each bright, unsaturated star
of the calibrated image the residual flux in a circular aperture is compared with the star's
own flux (the *residual fraction*) and with the aperture's noise (the *residual chi*, whose
robust spread is 1 for a perfect subtraction and grows with mis-registration or PSF
mismatch). Dipoles are the share of DIA sources flagged ``is_dipole``; the DIA count is
compared with what a configured rate per square degree predicts for the detector's area.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.table import Table

from shutterline.analysis import photometry, psfmap
from shutterline.images import mask as mask_mod
from shutterline.processing import stamps

__all__ = ["DiffQuality", "measure_diff_quality"]

_HARD = int(mask_mod.MaskBit.BAD | mask_mod.MaskBit.SAT | mask_mod.MaskBit.NO_DATA)


@dataclasses.dataclass(frozen=True)
class DiffQuality:
    """Quality of one detector's difference image.

    Attributes
    ----------
    n_bright : int
        Bright stars whose residuals were measured.
    residual_fraction : float
        Median of residual aperture flux over the star's flux.
    residual_chi_sigma : float
        Robust spread of residual flux over its noise (1 for a perfect subtraction).
    dia_count : int
        DIA sources of the detector.
    dipole_fraction : float
        Share of them flagged as dipoles (NaN without DIA sources).
    dia_expected : float
        DIA sources the configured rate predicts for the detector's area.
    dia_ratio : float
        ``dia_count / dia_expected``.
    """

    n_bright: int
    residual_fraction: float
    residual_chi_sigma: float
    dia_count: int
    dipole_fraction: float
    dia_expected: float
    dia_ratio: float


def _aperture_sums(
    plane: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    half = int(np.ceil(radius))
    xi, yi = stamps.nearest_pixel(x), stamps.nearest_pixel(y)
    values, inside = stamps.cutouts(plane, xi, yi, half)
    g = np.arange(-half, half + 1, dtype=np.float64)
    dy, dx = g[None, :, None] - (y - yi)[:, None, None], g[None, None, :] - (x - xi)[:, None, None]
    aperture = (dx**2 + dy**2 <= radius**2) & inside
    return np.where(aperture, values, 0.0).sum(axis=(1, 2)), aperture


def measure_diff_quality(
    calexp_image: np.ndarray,
    calexp_njy: float,
    difference: tuple[np.ndarray, np.ndarray, np.ndarray],
    difference_njy: float,
    src: Table,
    dia: Table,
    fwhm_px: float,
    area_deg2: float,
    expected_per_deg2: float,
    min_snr: float = 100.0,
) -> DiffQuality:
    """Residuals of ``src``'s bright stars in ``difference`` and the DIA statistics.

    Parameters
    ----------
    calexp_image : numpy.ndarray
        ``(ny, nx)`` calibrated image; ``calexp_njy`` its nJy per unit.
    difference : tuple of numpy.ndarray
        ``(image, variance, mask)`` of the difference image on the same pixel grid;
        ``difference_njy`` its nJy per unit.
    src, dia : astropy.table.Table
        The source catalogue and the DIA sources (``is_dipole``).
    area_deg2 : float
        The detector's area on the sky, square degrees.
    expected_per_deg2 : float
        DIA sources expected per square degree and visit.
    """
    d_image, d_var, d_mask = difference
    bright = psfmap.psf_stars(src, min_snr)
    x, y = np.asarray(src["x"], np.float64)[bright], np.asarray(src["y"], np.float64)[bright]
    radius = max(2.0, 1.5 * (fwhm_px if np.isfinite(fwhm_px) else 4.0))
    star, _ = _aperture_sums(calexp_image, x, y, radius)
    resid, _ = _aperture_sums(d_image, x, y, radius)
    var, _ = _aperture_sums(d_var, x, y, radius)
    hard, _ = _aperture_sums((d_mask & _HARD).astype(np.float64), x, y, radius)
    ok = (hard == 0) & (star > 0) & (var > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = resid[ok] * difference_njy / (star[ok] * calexp_njy)
        chi = resid[ok] / np.sqrt(var[ok])
    n = len(dia)
    dipoles = float(np.mean(np.asarray(dia["is_dipole"], bool))) if n else float("nan")
    expected = expected_per_deg2 * area_deg2
    return DiffQuality(
        n_bright=int(ok.sum()),
        residual_fraction=float(np.median(fraction)) if fraction.size else float("nan"),
        residual_chi_sigma=photometry.robust_sigma(chi),
        dia_count=n,
        dipole_fraction=dipoles,
        dia_expected=float(expected),
        dia_ratio=float(n / expected) if expected > 0 else float("nan"),
    )
