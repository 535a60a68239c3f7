"""Cosmic-ray detection by sharpness against the sharpest PSF the telescope can deliver.

A star's light is spread by the PSF: for a Gaussian PSF of width sigma centred on a pixel, the
mean of the two neighbours along an axis is at least ``exp(-1 / (2 sigma**2))`` times the
central pixel, and along a diagonal ``exp(-1 / sigma**2)`` (a star off the pixel centre, or
pixel integration, only raises these ratios). A pixel that stands above its neighbours, in any
of the four directions, by more than the sharpest allowed PSF permits, by ``sharp_nsigma`` times
the noise of the comparison, cannot be sky light: it is a cosmic ray (or a hot pixel). Tracks
are caught because they are sharp across their direction. Multi-pixel hits are peeled by
iterating: detected pixels are interpolated, the remaining candidates re-tested. Detected
pixels are grown by one pixel into neighbours more than ``grow_nsigma`` above the background.

Only candidate pixels (above a coarse threshold) are examined, so the cost is one threshold pass
over the image plus work proportional to the number of bright pixels.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from shutterline.images import mask as mask_mod
from shutterline.isr import interpolate

__all__ = ["CosmicRayConfig", "coarse_background", "repair_cosmic_rays"]

_CR = int(mask_mod.MaskBit.CR)
_INTRP = int(mask_mod.MaskBit.INTRP)
# Pixels that are never candidates and never serve as interpolation neighbours.
_EXCLUDE = int(mask_mod.MaskBit.SAT | mask_mod.MaskBit.BAD | mask_mod.MaskBit.NO_DATA)
# Neighbours whose value says nothing about the sky's sharpness there.
_NO_EVIDENCE = _EXCLUDE | _CR | _INTRP


@dataclasses.dataclass(frozen=True)
class CosmicRayConfig:
    """Parameters of `repair_cosmic_rays`.

    ``min_psf_fwhm_pix`` is the sharpest PSF (FWHM, pixels) a star can have: set it below the
    best seeing, as a margin for non-Gaussian cores.
    """

    min_psf_fwhm_pix: float = 2.6
    detect_nsigma: float = 5.0
    sharp_nsigma: float = 4.5
    grow_nsigma: float = 2.0
    max_iterations: int = 4
    mesh: int = 128


def coarse_background(image: np.ndarray, mesh: int = 128, step: int = 4) -> np.ndarray:
    """Block medians of ``image`` over ``mesh`` x ``mesh`` pixel cells, sampled every ``step``.

    Returns
    -------
    numpy.ndarray
        ``(gy, gx)`` float32, image units; cell ``(j, i)`` covers rows ``j*mesh`` onwards.
    """
    sub = image[::step, ::step]
    block = max(mesh // step, 1)
    gy, gx = sub.shape[0] // block, sub.shape[1] // block
    if gy == 0 or gx == 0:
        return np.array([[np.median(sub)]], np.float32)
    cells = sub[: gy * block, : gx * block].reshape(gy, block, gx, block).transpose(0, 2, 1, 3)
    return np.median(cells.reshape(gy, gx, block * block), axis=2).astype(np.float32)


def _ratios(fwhm_pix: float) -> tuple[float, float]:
    sigma = fwhm_pix / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return math.exp(-1.0 / (2.0 * sigma**2)), math.exp(-1.0 / sigma**2)


def _background_at(grid: np.ndarray, mesh: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    jy = np.minimum(ys // mesh, grid.shape[0] - 1)
    jx = np.minimum(xs // mesh, grid.shape[1] - 1)
    return grid[jy, jx]


def _is_sharp(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    bkg: np.ndarray,
    config: CosmicRayConfig,
) -> np.ndarray:
    r_axis, r_diag = _ratios(config.min_psf_fwhm_pix)
    nx = image.shape[1]
    img, var = image.ravel(), variance.ravel()
    idx = ys * nx + xs
    v0 = img[idx] - bkg
    var0 = var[idx]
    sharp = np.zeros(len(ys), bool)
    # Only significant pixels are tested (flat indexing: gathers are the cost here).
    test = np.flatnonzero((v0 > 0) & (v0 * v0 > config.detect_nsigma**2 * var0))
    idx, v0, var0 = idx[test], v0[test], var0[test]
    k2 = np.float32(config.sharp_nsigma**2)
    hit = np.zeros(len(idx), bool)
    flags = mask.ravel()
    for step, r in ((1, r_axis), (nx, r_axis), (nx + 1, r_diag), (nx - 1, r_diag)):
        r32 = np.float32(r)
        excess = v0 * r32 - (np.float32(0.5) * (img[idx + step] + img[idx - step]) - bkg[test])
        noise2 = r32 * r32 * var0 + np.float32(0.25) * (var[idx + step] + var[idx - step])
        sharp_here = (excess > 0) & (excess * excess > k2 * noise2)
        # A neighbour that is a defect, or was interpolated over (a bad column or row, an
        # earlier cosmic ray), is no evidence: on a star the interpolated value sits below the
        # profile and would make the pixel beside it look sharp, and growth would then spread
        # the flag over the core.
        sharp_here &= ((flags[idx + step] | flags[idx - step]) & _NO_EVIDENCE) == 0
        hit |= sharp_here
    sharp[test] = hit
    return sharp


def _candidates(
    image: np.ndarray, variance: np.ndarray, mask: np.ndarray, grid: np.ndarray, nsigma: float
) -> tuple[np.ndarray, np.ndarray]:
    # A cheap superset: the faintest sky level plus nsigma of the quietest pixels' noise.
    quiet = float(np.percentile(variance[::16, ::16], 5))
    threshold = float(grid.min()) + 0.9 * nsigma * math.sqrt(max(quiet, 0.0))
    nx = image.shape[1]
    flat = np.flatnonzero(image[1:-1, 1:-1] > threshold)
    ys, xs = np.divmod(flat, nx - 2)
    ys, xs = ys + 1, xs + 1
    keep = (mask[ys, xs] & _EXCLUDE) == 0
    return ys[keep], xs[keep]


def _grow(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    bkg_grid: np.ndarray,
    config: CosmicRayConfig,
) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = image.shape
    gy = (ys[:, None] + np.array([-1, -1, -1, 0, 0, 1, 1, 1])).ravel()
    gx = (xs[:, None] + np.array([-1, 0, 1, -1, 1, -1, 0, 1])).ravel()
    inside = (gy >= 0) & (gy < ny) & (gx >= 0) & (gx < nx)
    flat = np.unique(gy[inside] * nx + gx[inside])
    gy, gx = np.divmod(flat, nx)
    free = (mask[gy, gx] & (_EXCLUDE | _CR)) == 0
    gy, gx = gy[free], gx[free]
    excess = image[gy, gx] - _background_at(bkg_grid, config.mesh, gy, gx)
    bright = excess > config.grow_nsigma * np.sqrt(variance[gy, gx])
    both = np.unique(np.concatenate([ys * nx + xs, flat[free][bright]]))
    return np.divmod(both, nx)


def repair_cosmic_rays(
    image: np.ndarray, variance: np.ndarray, mask: np.ndarray, config: CosmicRayConfig
) -> int:
    """Find cosmic rays, flag them ``CR | INTRP`` and interpolate over them, in place.

    Parameters
    ----------
    image, variance : numpy.ndarray
        ``(ny, nx)`` float32, electrons and electrons**2, bias-subtracted and flat-fielded
        (the sky is still in; a coarse background is estimated here).
    mask : numpy.ndarray
        ``(ny, nx)`` int32; ``SAT``, ``BAD`` and ``NO_DATA`` pixels are never candidates.

    Returns
    -------
    int
        Number of pixels flagged ``CR``.
    """
    grid = coarse_background(image, config.mesh)
    ys, xs = _candidates(image, variance, mask, grid, config.detect_nsigma)
    total = 0
    for _ in range(config.max_iterations):
        if len(ys) == 0:
            break
        bkg = _background_at(grid, config.mesh, ys, xs)
        sharp = _is_sharp(image, variance, mask, ys, xs, bkg, config)
        if not sharp.any():
            break
        cy, cx = _grow(image, variance, mask, ys[sharp], xs[sharp], grid, config)
        mask[cy, cx] |= _CR | _INTRP
        interpolate.interpolate_pixels(image, variance, mask, _EXCLUDE | _CR, cy, cx)
        total += len(cy)
        ys, xs = _next_candidates(ys[~sharp], xs[~sharp], cy, cx, mask)
    return total


def _next_candidates(
    ys: np.ndarray, xs: np.ndarray, cy: np.ndarray, cx: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    # Only pixels beside a newly repaired one can change their verdict.
    nx = mask.shape[1]
    window = (np.arange(-1, 2)[:, None] * nx + np.arange(-1, 2)).ravel()
    near = np.unique(((cy * nx + cx)[:, None] + window).ravel())
    keep = np.isin(ys * nx + xs, near) & ((mask[ys, xs] & _CR) == 0)
    return ys[keep], xs[keep]
