"""Coadding warped exposures of one patch and band into a template.

Weights are one number per input, the inverse of its median good-pixel variance (nJy**2):
per-pixel inverse-variance weights would favour pixels that fluctuated low (their Poisson
variance is lower) and bias star fluxes down, and would weight a star's core differently
from its wings, so the coadd PSF would be no input's PSF.

Outlier rejection: away from the sources the inputs' median shows (pixels where the median
of the inputs, each smoothed over ``source_box`` pixels, exceeds ``source_nsigma`` of its
noise, grown by ``source_grow`` pixels), an input more than
``nsigma`` of its own noise from the median is rejected (a transient, an asteroid, a
cosmic-ray residual), and the rejection grows by ``grow`` pixels to take the source's wings.
Faint outliers spread over many pixels (an asteroid a few sigma per pixel, a satellite trail,
a column that misbehaved in one input) are found on the residual from the median in units of
the input's noise, averaged over ``smooth_box`` pixels square or ``column_box`` rows of a
column: more than ``smooth_nsigma`` of that average's noise rejects too, so no moving
object leaves a "ghost" at a fraction of its flux.
Near sources the inputs are not rejected: inputs of different seeing legitimately disagree
in a star's core and wings. An outlier found on the sky is followed into them, though, as far
as it stays an outlier of the same sign (a trail passing a star). Rejection needs at least
three inputs at a pixel.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod
from shutterline.templates import _box, _median

__all__ = ["CoaddConfig", "Warp", "coadd", "psf_fwhm", "to_njy"]

_NO_DATA = int(mask_mod.MaskBit.NO_DATA)
#: Input pixels with these bits do not enter the coadd while another input covers the pixel.
EXCLUDE = int(
    mask_mod.MaskBit.NO_DATA | mask_mod.MaskBit.SAT | mask_mod.MaskBit.BAD | mask_mod.MaskBit.CR
)
#: Bits of the inputs carried into the coadd mask where an input used there had them.
_CARRY = int(mask_mod.MaskBit.SAT | mask_mod.MaskBit.INTRP | mask_mod.MaskBit.SUSPECT)


@dataclasses.dataclass(frozen=True)
class CoaddConfig:
    """Parameters of `coadd`."""

    nsigma: float = 5.0
    grow: int = 2
    source_nsigma: float = 5.0
    source_box: int = 5
    source_grow: int = 8
    smooth_box: int = 3
    column_box: int = 9
    smooth_nsigma: float = 6.0
    min_inputs_for_rejection: int = 3


@dataclasses.dataclass
class Warp:
    """One input on the patch grid, possibly cropped to where it has data.

    ``exposure`` is in nJy and covers rows ``y0:y0+ny``, columns ``x0:x0+nx`` of the patch.
    """

    exposure: exposure_mod.Exposure
    y0: int = 0
    x0: int = 0


def to_njy(exposure: exposure_mod.Exposure) -> exposure_mod.Exposure:
    """Scale a calibrated exposure (metadata ``NJY_PER_UNIT``) to nJy, in place; return it."""
    scale = float(exposure.metadata["NJY_PER_UNIT"])
    exposure.image *= np.float32(scale)
    exposure.variance *= np.float32(scale * scale)
    exposure.metadata.update({"BUNIT": "nJy", "NJY_PER_UNIT": 1.0})
    return exposure


def _weight(exposure: exposure_mod.Exposure) -> float:
    good = (exposure.mask & EXCLUDE) == 0
    if not good.any():
        return 0.0
    median = float(np.median(exposure.variance[good]))
    return 1.0 / median if median > 0 else 0.0


def _stack(
    warps: Sequence[Warp], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(warps)
    image = np.zeros((n, *shape), np.float32)
    variance = np.zeros((n, *shape), np.float32)
    mask = np.full((n, *shape), _NO_DATA, np.int32)
    for i, warp in enumerate(warps):
        ny, nx = warp.exposure.shape
        box = (slice(warp.y0, warp.y0 + ny), slice(warp.x0, warp.x0 + nx))
        image[(i, *box)] = warp.exposure.image
        variance[(i, *box)] = warp.exposure.variance
        mask[(i, *box)] = warp.exposure.mask
    return image, variance, mask


def _reject(
    image: np.ndarray, variance: np.ndarray, use: np.ndarray, config: CoaddConfig
) -> np.ndarray:
    count = use.sum(axis=0)
    enough = count >= config.min_inputs_for_rejection
    if not enough.any():
        return use
    # Work on the pixels with enough inputs only: no all-NaN columns, less work.
    sel = (slice(None), enough)
    use_sel, var_sel = use[sel], variance[sel]  # each boolean gather once
    values = np.where(use_sel, image[sel], np.nan)
    median = _median.nanmedian_inputs(values)
    typical = _median.nanmedian_inputs(np.where(use_sel, var_sel, np.nan))
    noise = np.full(enough.shape, np.inf, np.float32)
    noise[enough] = np.sqrt(1.571 * typical / count[enough]) / config.source_box
    source = _smoothed_median(image, use, enough, config.source_box) > config.source_nsigma * noise
    size = 2 * config.source_grow + 1
    sky = ~mask_mod.dilate_square(source, size)[enough]
    sigma = np.sqrt(np.maximum(var_sel, np.float32(1e-30)))
    z = np.where(use_sel, (values - median) / sigma, np.float32(0))
    far = np.abs(z) > config.nsigma
    suspect = (far | _faint(z, enough, config)) & sky & use_sel
    out = use.copy()
    if not suspect.any():
        return out
    for i in np.flatnonzero(suspect.any(axis=1)):
        bad = _into_sources(suspect[i], z[i], enough, config.nsigma)
        out[i] &= ~mask_mod.dilate_square(bad, 2 * config.grow + 1)
    return out


def _into_sources(
    suspect: np.ndarray, z: np.ndarray, enough: np.ndarray, nsigma: float
) -> np.ndarray:
    """An input's suspect sky pixels, followed into the sources through its outliers.

    Full-size bool plane. An outlier that is connected (same sign, ``|z| > nsigma`` all the
    way) to one on the sky is the same outlier - a satellite trail crossing near a star or a
    galaxy - not the seeing disagreement the protection is for, which stays around its
    source. Without this a trail survived in a piece of ~17 x 20 pixels at every source it
    passed (17 bright negative false DIA sources on seed 202 100014/28).
    """
    bad = np.zeros(enough.shape, bool)
    bad[enough] = suspect
    for side in (z > nsigma, z < -nsigma):
        reach = np.zeros(enough.shape, bool)
        reach[enough] = side
        seeds = bad & reach
        if seeds.any():
            bad |= ndimage.binary_propagation(seeds, np.ones((3, 3), bool), mask=reach)
    return bad


def _smoothed_median(
    image: np.ndarray, use: np.ndarray, enough: np.ndarray, box: int
) -> np.ndarray:
    """Median over inputs of each input smoothed over ``box`` pixels (0 where not ``enough``).

    What the source mask is found on: smoothing first brings each input's noise down by
    ``box`` before the median, so noise does not trigger (the growth would turn it into large
    holes in the rejection). Smoothing the median instead does not: one bright outlier (a
    satellite trail in one of three inputs) lifts the median by half a sigma at every pixel
    it covers, a bias smoothing keeps while the threshold drops by ``box``, so the trail
    became a "source" and was never rejected. The median of n values has about pi/2 times the
    variance of their mean.
    """
    smooth = np.full(image.shape, np.nan, np.float32)
    for i in range(image.shape[0]):
        cover = _box.box_mean(use[i].astype(np.float32), box, box)
        total = _box.box_mean(np.where(use[i], image[i], np.float32(0)), box, box)
        full = use[i] & (cover > 0.5)  # a mean of data, not of the zeros around it
        np.divide(total, cover, out=smooth[i], where=full)
    out = np.zeros(enough.shape, np.float32)
    with warnings.catch_warnings():  # a corner where no input has most of its box
        warnings.simplefilter("ignore", RuntimeWarning)
        out[enough] = np.nan_to_num(_median.nanmedian_inputs(smooth[:, enough]))
    return out


def _faint(z: np.ndarray, enough: np.ndarray, config: CoaddConfig) -> np.ndarray:
    """Where an input's residual, averaged over a box or along a column, is an outlier."""
    full = np.zeros((z.shape[0], *enough.shape), np.float32)
    full[:, enough] = z
    out = np.zeros(full.shape, bool)
    k, c = config.smooth_box, config.column_box
    # A box mean of m unit-variance residuals, times sqrt(m): unit variance again.
    for size in ((k, k), (c, 1)):
        scale = np.float32(np.sqrt(size[0] * size[1]))
        for i in range(full.shape[0]):
            mean = _box.box_mean(full[i], *size)
            mean *= scale
            out[i] |= np.abs(mean) > config.smooth_nsigma
    return out[:, enough]


def _combine_psf(psfs: Sequence[np.ndarray | None], weights: Sequence[float]) -> np.ndarray | None:
    pairs = [(p, w) for p, w in zip(psfs, weights, strict=True) if p is not None and w > 0]
    if not pairs:
        return None
    size = max(p.shape[0] for p, _ in pairs)
    total = np.zeros((size, size), np.float64)
    for psf, w in pairs:
        pad = (size - psf.shape[0]) // 2
        total[pad : pad + psf.shape[0], pad : pad + psf.shape[1]] += w * psf / psf.sum()
    return (total / total.sum()).astype(np.float32)


def psf_fwhm(psf: np.ndarray) -> float:
    """FWHM in pixels of a PSF image from its second moments (Gaussian-equivalent)."""
    k = psf.shape[0]
    yy, xx = np.mgrid[0:k, 0:k] - (k - 1) / 2.0
    p = np.clip(psf, 0, None) / np.clip(psf, 0, None).sum()
    cy, cx = float((p * yy).sum()), float((p * xx).sum())
    var = float((p * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum()) / 2.0
    return 2.3548 * float(np.sqrt(var))


def coadd(
    warps: Sequence[Warp],
    shape: tuple[int, int],
    config: CoaddConfig | None = None,
) -> exposure_mod.Exposure:
    """Weighted mean of warps in nJy on one patch grid, with rejection, variance, mask, PSF.

    Parameters
    ----------
    warps : sequence of Warp
        Inputs in nJy (see `to_njy`) on the patch grid (possibly cropped).
    shape : tuple of int
        ``(ny, nx)`` of the patch.

    Returns
    -------
    Exposure
        ``(ny, nx)`` float32 image (nJy), variance (nJy**2) of the weighted mean of the pixels
        used, mask (``NO_DATA`` where no input; ``SAT``/``INTRP``/``SUSPECT`` carried from
        inputs used), ``psf`` the weighted mean of the inputs' PSFs (weights times coverage);
        metadata ``BUNIT='nJy'``, ``NJY_PER_UNIT=1``, ``NINPUT``, ``PSF_FWHM``. No WCS: the
        caller sets the patch's.
    """
    config = config or CoaddConfig()
    weights = np.array([_weight(w.exposure) for w in warps], np.float32)
    # Only the box the inputs cover is worked on: outside it no input has data, and every
    # smoothing there runs over zeros (exactly zero), so the bytes are those of the full patch.
    box = _union(warps, shape)
    local = [Warp(w.exposure, w.y0 - box[0], w.x0 - box[1]) for w in warps]
    image, variance, mask = _stack(local, (box[2] - box[0], box[3] - box[1]))
    use = ((mask & EXCLUDE) == 0) & (weights > 0)[:, None, None]
    # Where every input is saturated (or bad), use what data there is rather than nothing.
    use |= ((mask & _NO_DATA) == 0) & ~use.any(axis=0)
    use = _reject(image, variance, use, config)
    w = np.where(use, weights[:, None, None], np.float32(0))
    wsum = w.sum(axis=0)
    covered = wsum > 0
    safe = np.where(covered, wsum, np.float32(1))
    out_image = np.where(covered, (w * image).sum(axis=0) / safe, np.float32(0))
    out_var = np.where(covered, (w * w * variance).sum(axis=0) / (safe * safe), np.float32(0))
    out_mask = np.bitwise_or.reduce(np.where(use, mask & _CARRY, 0), axis=0).astype(np.int32)
    out_mask[~covered] |= _NO_DATA
    coverage = use.sum(axis=(1, 2)).astype(np.float64)
    psf = _combine_psf([wp.exposure.psf for wp in warps], list(weights * coverage))
    metadata: dict[str, object] = {"BUNIT": "nJy", "NJY_PER_UNIT": 1.0, "NINPUT": len(warps)}
    if psf is not None:
        metadata["PSF_FWHM"] = psf_fwhm(psf)
    return exposure_mod.Exposure(
        _placed(out_image.astype(np.float32), shape, box, 0),
        _placed(out_mask, shape, box, _NO_DATA),
        _placed(out_var.astype(np.float32), shape, box, 0),
        psf=psf,
        metadata=metadata,
    )


def _union(warps: Sequence[Warp], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)`` of the patch the warps cover; a warp outside the patch is an error."""
    if not warps:
        return (0, 0, 0, 0)
    y0 = min(w.y0 for w in warps)
    x0 = min(w.x0 for w in warps)
    y1 = max(w.y0 + w.exposure.shape[0] for w in warps)
    x1 = max(w.x0 + w.exposure.shape[1] for w in warps)
    if y0 < 0 or x0 < 0 or y1 > shape[0] or x1 > shape[1]:
        raise ValueError(
            f"warps cover rows {y0}:{y1}, columns {x0}:{x1}, outside the {shape[0]} x "
            f"{shape[1]} patch"
        )
    return (y0, x0, y1, x1)


def _placed(
    plane: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int], fill: int
) -> np.ndarray:
    """``plane`` (the box's) placed in a full ``shape`` plane of ``fill``."""
    out = np.full(shape, fill, plane.dtype)
    out[box[0] : box[2], box[1] : box[3]] = plane
    return out
