"""A simple, explainable reliability score (0..1) for DIA sources.

Not a trained classifier: a product of penalties, each for one documented way a difference
image makes false sources. A clean, PSF-like, isolated detection scores 1. ``z`` is the
significance of the core chi-square of the PSF fit (`measurement.PsfFit.chi2_z`), so noise
alone rarely costs anything and a cosmic ray (far sharper than the PSF) costs nearly all.

================================  =======  ===================================================
condition                          factor   why
================================  =======  ===================================================
PSF-fit core residual ``z`` > 5    e^(-(z-5)/3)  shape unlike the PSF (residual, blend, artefact)
dipole                             0.2      mis-registration or PSF-matching residual
masked pixel at the centre         0.1      saturated / bad / cosmic ray / no data / edge
masked pixel in the footprint      0.5      measurement partly on bad pixels
interpolated or suspect pixels     0.7      measurement partly on repaired pixels
saturated pixels within 5 FWHM     0.3      the wings of a saturated star rarely subtract
much smaller than the PSF          0.2      cosmic-ray-like sharpness (size < 0.5 x PSF, SNR > 15)
trailed                            0.8      often real (a fast asteroid), but also artefacts
|flux| < 3 % of template flux      0.5      likely the residual of a bright static star
================================  =======  ===================================================
"""

from __future__ import annotations

import numpy as np

__all__ = ["VERSION", "score"]

#: The alert schema's ``reliabilityVersion``: this table of penalties, revision 1.
VERSION = "shutterline-penalties-1"


def score(
    *,
    chi2_z: np.ndarray,
    is_dipole: np.ndarray,
    center_masked: np.ndarray,
    any_masked: np.ndarray,
    repaired: np.ndarray,
    near_saturation: np.ndarray,
    size_ratio: np.ndarray,
    snr: np.ndarray,
    trail: np.ndarray,
    flux: np.ndarray,
    template_flux: np.ndarray,
) -> np.ndarray:
    """Reliability per source, float32 in ``[0, 1]``; every argument is a length-n array.

    ``size_ratio`` is the de-weighted moment trace of the source over the PSF's (NaN when it
    could not be measured; then no sharpness penalty). Below an SNR of 15 the size is too
    noisy to judge (about 20 % error at SNR 10); the residual ``z`` covers sharpness there.
    """
    z = np.nan_to_num(np.asarray(chi2_z, float), nan=0.0)
    # z is only roughly N(0, 1): neighbouring pixels' noise is not fully independent.
    r = np.exp(-np.clip(z - 5.0, 0.0, None) / 3.0)
    r = np.where(is_dipole, r * 0.2, r)
    r = np.where(center_masked, r * 0.1, np.where(any_masked, r * 0.5, r))
    r = np.where(repaired, r * 0.7, r)
    r = np.where(near_saturation, r * 0.3, r)
    size = np.asarray(size_ratio, float)
    sharp = np.isfinite(size) & (size < 0.5) & (np.abs(snr) > 15)
    r = np.where(sharp, r * 0.2, r)
    r = np.where(trail, r * 0.8, r)
    residual = np.abs(flux) < 0.03 * np.nan_to_num(np.asarray(template_flux, float), nan=0.0)
    r = np.where(residual, r * 0.5, r)
    return np.clip(r, 0.0, 1.0).astype(np.float32)
