"""Sky level and 5-sigma limiting magnitude of a calibrated detector image.

The calibrated image is background-subtracted, but its variance plane still holds the sky:
after instrument signature removal a pixel's variance is its electrons plus the read noise
squared. The sky is therefore read from the variance of unmasked pixels (read noise
included; a few tens of electrons against thousands of sky). The limiting magnitude is that
of a point source measured with the PSF at five times its PSF-flux noise,
``sigma = sqrt(NEA * variance)``, with ``NEA = 1 / sum(psf^2)`` of the exposure's PSF image
(or ``4 pi sigma^2`` of a Gaussian of the measured FWHM when it has none).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from shutterline.images import mask as mask_mod

__all__ = ["Depth", "measure_depth", "noise_equivalent_area"]

_UNUSABLE = int(
    mask_mod.MaskBit.BAD
    | mask_mod.MaskBit.SAT
    | mask_mod.MaskBit.CR
    | mask_mod.MaskBit.NO_DATA
    | mask_mod.MaskBit.DETECTED
)


@dataclasses.dataclass(frozen=True)
class Depth:
    """Sky and depth of one detector.

    Attributes
    ----------
    sky_e : float
        Sky (plus read noise variance), electrons per pixel over the exposure.
    sky_mag_arcsec2 : float
        The same as a surface brightness, AB mag per square arcsecond (NaN without a zero point).
    nea_px : float
        Noise-equivalent area of the PSF, pixels.
    limiting_mag : float
        5-sigma point-source limiting magnitude, AB.
    """

    sky_e: float
    sky_mag_arcsec2: float
    nea_px: float
    limiting_mag: float


def noise_equivalent_area(psf: np.ndarray | None, fwhm_px: float) -> float:
    """``1 / sum(p^2)`` of the normalised PSF image, or ``4 pi sigma^2`` of a Gaussian."""
    if psf is not None and psf.size and np.isfinite(psf).all() and psf.sum() > 0:
        p = np.asarray(psf, np.float64) / float(psf.sum())
        return float(1.0 / np.sum(p * p))
    sigma = fwhm_px / 2.3548200450309493
    return float(4 * np.pi * sigma**2)


def measure_depth(
    variance: np.ndarray,
    mask: np.ndarray,
    psf: np.ndarray | None,
    fwhm_px: float,
    zero_point: float,
    exptime: float,
    pixel_scale_arcsec: float,
) -> Depth:
    """Sky and 5-sigma depth from ``(ny, nx)`` variance (electrons^2) and mask planes.

    ``zero_point`` is the AB magnitude of one electron per second (`photometry`).
    """
    good = (mask & _UNUSABLE) == 0
    # Every 7th pixel: the median of millions of pixels does not need them all.
    sample = np.asarray(variance, np.float64)[::7, ::7][good[::7, ::7]]
    sample = sample[np.isfinite(sample) & (sample > 0)]
    sky = float(np.median(sample)) if sample.size else float("nan")
    nea = noise_equivalent_area(psf, fwhm_px)
    sigma_e = np.sqrt(nea * sky)
    with np.errstate(invalid="ignore", divide="ignore"):
        limiting = zero_point - 2.5 * np.log10(5.0 * sigma_e / exptime)
        per_arcsec2 = sky / exptime / pixel_scale_arcsec**2
        sky_mag = zero_point - 2.5 * np.log10(per_arcsec2)
    return Depth(sky, float(sky_mag), nea, float(limiting))
