"""Stage 3, calibration: astrometric fit and photometric zero point."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from astropy.table import Table

from shutterline import exceptions
from shutterline.images import Exposure
from shutterline.processing import astrometry, characterize, detection, photometry
from shutterline.telemetry import stages

__all__ = ["CalibrateConfig", "CalibrateResult", "calibrate"]

# Sources whose centroid or flux cannot be trusted for calibration.
_UNUSABLE = int(
    detection.SourceFlag.SATURATED
    | detection.SourceFlag.EDGE
    | detection.SourceFlag.MASKED_CORE
    | detection.SourceFlag.CENTROID_FAILED
    | detection.SourceFlag.BAD_FLUX
    | detection.SourceFlag.BLENDED
)


@dataclasses.dataclass(frozen=True)
class CalibrateConfig:
    """Configuration of `calibrate`.

    Attributes
    ----------
    astrometry : astrometry.AstrometryConfig
    min_snr_astrometry : float
        Sources below this PSF signal-to-noise do not enter the WCS fit.
    min_snr_photometry : float
        Matched stars below this do not enter the zero point.
    """

    astrometry: astrometry.AstrometryConfig = dataclasses.field(
        default_factory=astrometry.AstrometryConfig
    )
    min_snr_astrometry: float = 10.0
    min_snr_photometry: float = 50.0


@dataclasses.dataclass(frozen=True)
class CalibrateResult:
    """What `calibrate` returns.

    Attributes
    ----------
    exposure : Exposure
        The same pixel planes (shared, not copied) with the fitted WCS and metadata
        ``NJY_PER_UNIT``, ``NJY_ERR``, ``MAGZERO``, ``MAGZERR``, ``ASTRMS`` (arcsec),
        ``ASTNMAT``.
    sources : astropy.table.Table
        Input columns plus ``ra, dec`` (degrees), ``flux_njy, flux_njy_err, ap_flux_njy,
        ap_flux_njy_err`` (nJy) and ``ref_id`` (matched reference id, -1 if none).
    astrometry : astrometry.AstrometryResult
    photometry : photometry.PhotoCalib
    stats : dict
        QA numbers for spans and metrics.
    """

    exposure: Exposure
    sources: Table
    astrometry: astrometry.AstrometryResult
    photometry: photometry.PhotoCalib
    stats: dict[str, float]


def _ref_columns(refcat: Table, band: str, where: str) -> tuple[np.ndarray, ...]:
    needed = ["ra", "dec", f"{band}_flux", f"{band}_fluxErr"]
    missing = [c for c in needed if c not in refcat.colnames]
    if missing:
        raise exceptions.PermanentError(
            f"calibrate {where}: reference catalogue lacks column(s) {missing} for band "
            f"{band!r} (has {refcat.colnames})"
        )
    # Masked entries (a FITS null, a missing flux) become NaN, which every step skips.
    return tuple(np.ma.filled(np.ma.asarray(refcat[c], np.float64), np.nan) for c in needed)


def _usable(sources: Table, min_snr: float) -> np.ndarray:
    ext = np.asarray(sources["extendedness"])
    return np.asarray(
        ((sources["flags"] & _UNUSABLE) == 0) & (sources["snr"] >= min_snr) & ~(ext > 0.5)
    )


def _calibrated_sources(
    sources: Table,
    fit: astrometry.AstrometryResult,
    use: np.ndarray,
    refcat: Table,
    calib: photometry.PhotoCalib,
) -> Table:
    out = sources.copy(copy_data=True)
    # all_pix2world: the fitted SIP terms are part of the WCS (wcs_pix2world drops them).
    ra, dec = fit.wcs.all_pix2world(np.asarray(out["x"]), np.asarray(out["y"]), 0)
    out["ra"], out["dec"] = ra, dec
    for col in ("flux", "ap_flux"):
        out[f"{col}_njy"] = out[col] * calib.njy_per_unit
        out[f"{col}_njy_err"] = out[f"{col}_err"] * calib.njy_per_unit
    ref_id = np.full(len(out), -1, np.int64)
    ref_id[use[fit.source_index]] = np.asarray(refcat["id"])[fit.ref_index]
    out["ref_id"] = ref_id
    return out


def calibrate(
    exposure: Exposure,
    sources: Table,
    refcat: Table,
    band: str,
    config: CalibrateConfig | None = None,
) -> CalibrateResult:
    """Fit the WCS and the photometric zero point of a characterized exposure.

    Parameters
    ----------
    exposure : Exposure
        Output of `characterize.characterize` (its approximate WCS is the starting point).
    sources : astropy.table.Table
        Its source catalogue.
    refcat : astropy.table.Table
        ``id, ra, dec, <band>_flux, <band>_fluxErr`` (degrees, nJy), stars.
    band : str
        Band whose reference fluxes calibrate the image.

    Raises
    ------
    shutterline.exceptions.PermanentError
        No WCS on the exposure, reference columns missing, or too few matches.
    """
    config = config or CalibrateConfig()
    clock = stages.Laps("calibrate")
    where = characterize.describe(exposure.metadata)
    if exposure.wcs is None:
        raise exceptions.PermanentError(f"calibrate {where}: exposure has no WCS to refine")
    ra, dec, rflux, rerr = _ref_columns(refcat, band, where)
    use = np.flatnonzero(_usable(sources, config.min_snr_astrometry))
    x, y, flux = (np.asarray(sources[c])[use] for c in ("x", "y", "flux"))
    fit = astrometry.fit_wcs(
        x, y, flux, ra, dec, rflux, exposure.wcs, exposure.shape, config.astrometry, where
    )
    clock.lap("astrometry")
    src = use[fit.source_index]
    bright = np.asarray(sources["snr"])[src] >= config.min_snr_photometry
    calib = photometry.fit_zero_point(
        np.asarray(sources["flux"])[src][bright],
        np.asarray(sources["flux_err"])[src][bright],
        rflux[fit.ref_index][bright],
        rerr[fit.ref_index][bright],
        where=where,
    )
    out_sources = _calibrated_sources(sources, fit, use, refcat, calib)
    clock.lap("photometry")
    stats = {**_stats(fit, calib), **clock.laps}
    out = dataclasses.replace(
        exposure, wcs=fit.wcs, metadata=_metadata(exposure.metadata, fit, calib)
    )
    return CalibrateResult(out, out_sources, fit, calib, stats)


def _metadata(
    metadata: dict[str, Any], fit: astrometry.AstrometryResult, calib: photometry.PhotoCalib
) -> dict[str, Any]:
    """A copy of ``metadata`` with the calibration keys (new ones of at most 8 characters)."""
    out = dict(metadata)
    out.update(
        {
            "NJY_PER_UNIT": calib.njy_per_unit,
            "NJY_ERR": calib.njy_per_unit_err,
            "MAGZERO": calib.mag_zero,
            "MAGZERR": calib.mag_zero_err,
            "ASTRMS": fit.rms_arcsec,
            "ASTNMAT": fit.n_matched,
        }
    )
    return out


def _stats(fit: astrometry.AstrometryResult, calib: photometry.PhotoCalib) -> dict[str, float]:
    return {
        "astrometry_n_matched": float(fit.n_matched),
        "astrometry_rms_arcsec": fit.rms_arcsec,
        "astrometry_median_arcsec": fit.median_arcsec,
        "astrometry_offset_px": float(np.hypot(*fit.offset_pixels)),
        "zero_point_mag": calib.mag_zero,
        "zero_point_err_mag": calib.mag_zero_err,
        "zero_point_n_stars": float(calib.n_stars),
        "zero_point_scatter_mag": calib.scatter_mag,
    }
