"""Dipole measurement: the two lobes of a detection merged as a dipole, each PSF-fitted.

A dipole is a positive and a negative lobe within `detection.DIPOLE_RADIUS_FWHM` PSF widths
(kept at the stronger lobe). The weaker lobe is the strongest matched-filter peak of the
other sign within that radius; each lobe gets a PSF fit with its centroid free. Fields follow
the alert schema: ``dipoleMeanFlux = (pos - neg) / 2`` and ``dipoleFluxDiff = pos + neg``
(``neg`` is negative), so a pure mis-registration has ``dipoleFluxDiff`` near zero and a
real change on a mis-registered source does not; ``dipoleLength`` (arcsec) and
``dipole_angle`` (here degrees from the +x axis, negative to positive lobe; `dia` turns it
into the schema's bearing east of north with the WCS) separate the lobes;
``dipoleChi2`` is the chi-square of the two fitted lobes together over a stamp holding both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shutterline.differencing import detection, measurement

__all__ = ["NAN_ROW", "measure_dipole"]

#: The dipole columns of a source that is not a dipole.
NAN_ROW: dict[str, Any] = {
    "dipole_mean_flux": np.nan, "dipole_mean_flux_err": np.nan, "dipole_flux_diff": np.nan,
    "dipole_flux_diff_err": np.nan, "dipole_length": np.nan, "dipole_angle": np.nan,
    "dipole_ndata": 0, "dipole_fit_attempted": False, "dipole_chi2": np.nan,
}  # fmt: skip


def _other_lobe(snr: np.ndarray, y: int, x: int, radius: float, sign: float) -> tuple[int, int]:
    r = int(np.ceil(radius))
    ny, nx = snr.shape
    y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, ny), max(x - r, 0), min(x + r + 1, nx)
    win = -sign * snr[y0:y1, x0:x1]
    yy, xx = np.mgrid[y0:y1, x0:x1]
    win = np.where((yy - y) ** 2 + (xx - x) ** 2 <= radius**2, win, -np.inf)
    k = int(np.argmax(win))
    return int(yy.ravel()[k]), int(xx.ravel()[k])


def measure_dipole(
    cut: measurement.Cutter,
    psf: np.ndarray,
    snr: np.ndarray,
    main: measurement.PsfFit,
    sign: float,
    fwhm: float,
    arcsec_per_px: float,
) -> dict[str, Any]:
    """Dipole columns for a detection whose stronger lobe was fitted as ``main``."""
    oy, ox = _other_lobe(
        snr, round(main.y), round(main.x), detection.DIPOLE_RADIUS_FWHM * fwhm, sign
    )
    other = measurement.fit_psf(cut, psf, float(oy), float(ox), recentre=True)
    if not np.isfinite(other.flux) or other.ndata == 0:
        return {**NAN_ROW, "dipole_fit_attempted": True}
    pos, neg = (main, other) if sign > 0 else (other, main)
    err = float(np.hypot(pos.flux_err, neg.flux_err))
    return {
        "dipole_mean_flux": 0.5 * (pos.flux - neg.flux),
        "dipole_mean_flux_err": 0.5 * err,
        "dipole_flux_diff": pos.flux + neg.flux,
        "dipole_flux_diff_err": err,
        "dipole_length": float(np.hypot(pos.x - neg.x, pos.y - neg.y)) * arcsec_per_px,
        "dipole_angle": float(np.degrees(np.arctan2(pos.y - neg.y, pos.x - neg.x))),
        "dipole_ndata": int(pos.ndata + neg.ndata),
        "dipole_fit_attempted": True,
        "dipole_chi2": _pair_chi2(cut, psf, pos, neg),
    }


def _pair_chi2(
    cut: measurement.Cutter, psf: np.ndarray, pos: measurement.PsfFit, neg: measurement.PsfFit
) -> float:
    """Chi-square of both lobes' PSF models over one stamp that holds them both."""
    k = psf.shape[0] // 2
    yc, xc = round(0.5 * (pos.y + neg.y)), round(0.5 * (pos.x + neg.x))
    half = k + int(np.ceil(0.5 * max(abs(pos.y - neg.y), abs(pos.x - neg.x)))) + 1
    img, var, msk, inner = cut.cut(yc, xc, half)
    model = np.zeros((2 * half + 1, 2 * half + 1))
    for lobe in (pos, neg):
        iy, ix = round(lobe.y), round(lobe.x)
        p = measurement.shifted_psf(psf, lobe.y - iy, lobe.x - ix, derivatives=False)[0]
        oy, ox = iy - yc + half - k, ix - xc + half - k
        model[oy : oy + 2 * k + 1, ox : ox + 2 * k + 1] += lobe.flux * p
    ok = ((msk & measurement.FIT_BAD) == 0) & (var > 0)
    return float(np.sum((img - model[inner])[ok] ** 2 / var[ok]))
