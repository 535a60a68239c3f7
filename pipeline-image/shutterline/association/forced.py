"""Forced PSF photometry at known positions on the difference and science images.

For each position the PSF image, shifted to the sub-pixel position by a Fourier phase ramp,
is fitted as a linear amplitude to the ``k x k`` stamp around the nearest pixel, weighted by
inverse variance: ``flux = sum(P D / V) / sum(P**2 / V)``, ``err = 1 / sqrt(sum(P**2 / V))``,
which is the optimal (maximum likelihood) point-source flux for Gaussian noise. Masked
pixels (``BAD, SAT, NO_DATA``) and pixels beyond the edge get zero weight. All positions are
processed together as ``(n, k, k)`` arrays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from astropy.table import Table

from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod

__all__ = ["BAD_PIXELS", "forced_photometry", "psf_fluxes"]

#: Mask bits whose pixels carry no usable flux.
BAD_PIXELS = int(mask_mod.MaskBit.BAD | mask_mod.MaskBit.SAT | mask_mod.MaskBit.NO_DATA)

#: Below this fraction of the PSF's squared weight on good pixels the fit is not attempted.
_MIN_GOOD_FRACTION = 0.2

FloatArray = npt.NDArray[np.float64]


def _shifted_psfs(psf: npt.NDArray[np.floating], dx: FloatArray, dy: FloatArray) -> FloatArray:
    """``(n, k, k)`` copies of ``psf`` (centred at ``k // 2``) moved by ``(dx, dy)`` pixels."""
    k = psf.shape[0]
    spectrum = np.fft.fft2(psf.astype(np.float64))
    fy = np.fft.fftfreq(k)[:, None]
    fx = np.fft.fftfreq(k)[None, :]
    ramp = np.exp(-2j * np.pi * (fx[None] * dx[:, None, None] + fy[None] * dy[:, None, None]))
    shifted = np.fft.ifft2(spectrum[None] * ramp).real
    return shifted / shifted.sum(axis=(1, 2), keepdims=True)


def _njy_per_unit(exposure: exposure_mod.Exposure, what: str) -> float:
    meta = exposure.metadata
    if "NJY_PER_UNIT" in meta:
        return float(meta["NJY_PER_UNIT"])
    if str(meta.get("BUNIT", "")).lower() == "njy":
        return 1.0
    raise ValueError(f"{what} image has neither NJY_PER_UNIT nor BUNIT='nJy' in its metadata")


def psf_fluxes(
    exposure: exposure_mod.Exposure,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    psf: npt.NDArray[np.floating] | None = None,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """PSF fluxes in nJy at pixel positions ``(x, y)`` (0-based), forced.

    Parameters
    ----------
    exposure : Exposure
        ``(ny, nx)`` image, mask and variance; ``metadata['NJY_PER_UNIT']`` (or ``BUNIT =
        'nJy'``) gives the flux scale.
    x, y : array_like
        ``(n,)`` positions in pixels.
    psf : numpy.ndarray, optional
        ``(k, k)`` PSF image (odd ``k``, sums to 1); default ``exposure.psf``.

    Returns
    -------
    flux, flux_err : numpy.ndarray
        ``(n,)`` nJy; NaN where no fit was possible.
    flag_edge : numpy.ndarray
        ``(n,)`` the PSF stamp reached beyond the image.
    flag_no_good_pixels : numpy.ndarray
        ``(n,)`` too little of the PSF fell on good pixels to fit.
    """
    psf = exposure.psf if psf is None else psf
    if psf is None:
        raise ValueError("forced photometry needs a PSF: the exposure has none")
    x = np.atleast_1d(np.asarray(x, np.float64))
    y = np.atleast_1d(np.asarray(y, np.float64))
    k = psf.shape[0]
    half = k // 2
    cx = np.floor(x + 0.5).astype(np.int64)
    cy = np.floor(y + 0.5).astype(np.int64)
    offs = np.arange(k) - half
    iy = cy[:, None, None] + offs[None, :, None]
    ix = cx[:, None, None] + offs[None, None, :]
    ny, nx = exposure.shape
    inside = (iy >= 0) & (iy < ny) & (ix >= 0) & (ix < nx)
    iyc, ixc = np.clip(iy, 0, ny - 1), np.clip(ix, 0, nx - 1)
    data = exposure.image[iyc, ixc].astype(np.float64)
    var = exposure.variance[iyc, ixc].astype(np.float64)
    good = inside & ((exposure.mask[iyc, ixc] & BAD_PIXELS) == 0) & (var > 0) & np.isfinite(data)
    model = _shifted_psfs(psf, x - cx, y - cy)
    weight = np.where(good, 1.0 / np.where(good, var, 1.0), 0.0)
    pp = np.sum(model**2 * weight, axis=(1, 2))
    pd = np.sum(model * np.where(good, data, 0.0) * weight, axis=(1, 2))
    fraction = np.sum(np.where(good, model**2, 0.0), axis=(1, 2)) / np.sum(model**2, axis=(1, 2))
    no_good = fraction < _MIN_GOOD_FRACTION
    scale = _njy_per_unit(exposure, "the")
    with np.errstate(divide="ignore", invalid="ignore"):
        flux = np.where(no_good, np.nan, pd / pp) * scale
        err = np.where(no_good, np.nan, 1.0 / np.sqrt(pp)) * scale
    return flux, err, ~inside.all(axis=(1, 2)), no_good


def forced_photometry(
    difference: exposure_mod.Exposure,
    science: exposure_mod.Exposure,
    objects: Table,
) -> Table:
    """Forced PSF fluxes of DIA objects on this visit's difference and science images.

    Parameters
    ----------
    difference, science : Exposure
        Same pixel grid ``(ny, nx)`` and WCS (the difference image is on the science grid);
        the difference PSF falls back to the science PSF when it has none.
    objects : astropy.table.Table
        ``dia_object_id, ra, dec`` (degrees), e.g. ``AssociationResult.forced_targets()``.

    Returns
    -------
    astropy.table.Table
        One row per object whose position falls on the image: ``dia_object_id, ra, dec, x,
        y, psf_flux, psf_flux_err`` (difference, nJy; errors times the difference's metadata
        ``NOISE_SCALE``, as the DIA sources'), ``science_flux, science_flux_err``
        (nJy), ``flag_edge, flag_no_good_pixels``.
    """
    if science.wcs is None:
        raise ValueError("forced photometry needs the science image's WCS")
    ra = np.asarray(objects["ra"], np.float64)
    dec = np.asarray(objects["dec"], np.float64)
    x, y = science.wcs.all_world2pix(ra, dec, 0) if len(ra) else (ra, dec)
    ny, nx = science.shape
    on = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    x, y = x[on], y[on]
    diff_psf = difference.psf if difference.psf is not None else science.psf
    d_flux, d_err, d_edge, d_bad = psf_fluxes(difference, x, y, diff_psf)
    # The DIA sources' errors carry the difference image's measured noise scale (correlated
    # noise the variance plane misses); the forced ones must be on the same scale.
    d_err = d_err * float(difference.metadata.get("NOISE_SCALE", 1.0))
    s_flux, s_err, s_edge, s_bad = psf_fluxes(science, x, y)
    return Table(
        {
            "dia_object_id": np.asarray(objects["dia_object_id"], np.int64)[on],
            "ra": ra[on],
            "dec": dec[on],
            "x": x,
            "y": y,
            "psf_flux": d_flux,
            "psf_flux_err": d_err,
            "science_flux": s_flux,
            "science_flux_err": s_err,
            "flag_edge": d_edge | s_edge,
            "flag_no_good_pixels": d_bad | s_bad,
        }
    )
