"""Image subtraction: PSF-match the sharper image to the blurrier one, subtract, decorrelate.

Choice of method: Alard-Lupton (`psfmatch`) with the decorrelation of Reiss & Lupton
(`decorrelate`), not ZOGY. Cost is not what decides: on 2048 x 4096 both need about three
full-size transforms (``tests/benchmarks/bench_differencing.py``: the whole subtraction is a
few FFT convolutions). What decides is that ZOGY builds the difference from the two PSF
models, while Alard-Lupton fits the kernel to the stars themselves, absorbing errors of the
models (one PSF image per exposure, a template PSF that is a weighted mean, the broadening of
the warp). Measured on simulated nights (``shutterline.simulate`` raws through ISR,
characterisation and calibration; three science/template pairs): matching with a kernel
derived from the PSF models alone, the information ZOGY would use, gave 27, 23 and 30 DIA
sources where the star-fitted kernel gave 22, 20 and 17, for 10 to 16 true changing sources.
On the synthetic pairs static stars subtract to the noise in both directions (template
sharper or blurrier), with at most a few 5-sigma residuals per image and the noise within
1 % of the propagated variance. Decorrelating gives back most of what convolving the science
image costs (with the science convolved, the noise of a PSF flux was 2.4 times what the pixel
variance said; afterwards it is within 10 %).

Direction: the image with the smaller PSF is convolved, so the blurrier one is never
deconvolved. The difference is science minus template in nJy (``BUNIT = 'nJy'``,
``NJY_PER_UNIT = 1``) whichever side was convolved.

Variance: the decorrelated noise is white, so the per-pixel variance is ``kappa**2`` times
the convolved image's plus the other's (``kappa`` the kernel sum). The ratio of the measured
difference-image noise to it is recorded (``noise_ratio``) and the plane then scaled by its
square (``variance_scale``), as LSST's pipelines do, so that thresholds mean what they say.

Mask: OR of both masks, the convolved side's ``NO_DATA`` and ``SAT`` and the other side's
``NO_DATA`` grown by the kernel half-width; ``EDGE`` on the border where more than
``EDGE_LOST_FRACTION`` of the kernel falls outside the image (`edge_width`: a fitted kernel is
far narrower than its half-width, which fits its widest basis function), ``SUSPECT`` from
there to the half-width, so a source there is detected and measured with a flag rather than
dropped; the inputs' detection bits are dropped.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
import sep
from scipy import ndimage

from shutterline.differencing import _resample, decorrelate, psfmatch
from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod

__all__ = [
    "BACKGROUND_MESH",
    "EDGE_LOST_FRACTION",
    "DifferenceResult",
    "edge_width",
    "noise_ratio",
    "subtract",
]

_Bit = mask_mod.MaskBit
_DROP = int(_Bit.DETECTED | _Bit.DETECTED_NEGATIVE)
_NOT_SKY = int(_Bit.BAD | _Bit.SAT | _Bit.CR | _Bit.EDGE | _Bit.NO_DATA | _Bit.SUSPECT)
MIN_STAMPS = 5
#: Mesh (pixels) of the background removed from the difference: large next to any PSF or
#: transient host, small next to the scale of the inputs' background-model differences.
BACKGROUND_MESH = 128
#: A pixel is ``EDGE`` when more than this fraction of the kernel's absolute weight would
#: fall outside the image (the convolution misses it), ``SUSPECT`` inside the half-width.
EDGE_LOST_FRACTION = 0.01


@dataclasses.dataclass
class DifferenceResult:
    """The difference image and how it was made.

    Attributes
    ----------
    difference : Exposure
        ``(ny, nx)`` science minus matched template, nJy; ``psf`` is the difference-image
        PSF; metadata from the science exposure plus the quality metrics (upper case).
    kernel : numpy.ndarray
        ``(k, k)`` matching kernel applied to the ``convolved`` image.
    convolved : str
        ``'template'`` or ``'science'``.
    metrics : dict
        ``kernel_sum`` (photometric ratio blurrier / sharper, 1 when both are calibrated),
        ``background``, ``n_stamps``, ``n_rejected``, ``stamp_chi2``, ``noise_ratio``
        (measured / propagated noise before scaling), ``variance_scale``, ``sigma_science``,
        ``sigma_template`` (PSF sigma, pixels), ``good_fraction``.
    """

    difference: exposure_mod.Exposure
    kernel: np.ndarray
    convolved: str
    metrics: dict[str, float]


def _psf_sigma(exp: exposure_mod.Exposure, name: str) -> float:
    if exp.psf is not None:
        return psfmatch.psf_sigma(exp.psf)
    if "PSF_FWHM" in exp.metadata:
        return float(exp.metadata["PSF_FWHM"]) / 2.3548200450309493
    raise ValueError(f"{name} exposure has neither a PSF image nor PSF_FWHM")


def _grow_into(out: np.ndarray, mask: np.ndarray, bit: int, half: int) -> None:
    """OR into ``out`` the ``bit`` of ``mask`` grown by ``half`` pixels (square), in place.

    Only ``NO_DATA`` and ``SAT`` are grown: they spread garbage through a convolution (zeros,
    clipped cores); interpolated bad columns and cosmic rays have sane values, and growing
    them by a kernel width would blind stripes of the difference image. The filter runs only
    over boxes of flagged blocks (a saturated star, a template edge), not the whole frame.
    """
    for box in _flagged_boxes(mask, bit, half):
        grown = mask_mod.dilate_square((mask[box] & bit).astype(bool), 2 * half + 1)
        out[box][grown] |= bit


def _flagged_boxes(mask: np.ndarray, bit: int, half: int) -> list[tuple[slice, slice]]:
    """Boxes holding every pixel within ``half`` of a pixel with ``bit``, with those pixels.

    Blocks (`_resample.BLOCK` pixels square) with the bit are grown by enough blocks to cover
    ``half`` pixels; each connected group of grown blocks is one box. A pixel within ``half``
    of a flagged one lies in the same box as it, so filtering box by box is exact.
    """
    # Native int32 for the compiled scan (a FITS-order mask is converted, not refused).
    flagged = _resample.dirty_blocks(np.ascontiguousarray(mask, np.int32), bit)
    if not flagged.any():
        return []
    reach = -(-half // _resample.BLOCK)
    grown = ndimage.binary_dilation(flagged, np.ones((2 * reach + 1,) * 2, bool))
    labels, _ = ndimage.label(grown)
    ny, nx = mask.shape
    b = _resample.BLOCK
    return [
        (slice(sy.start * b, min(sy.stop * b, ny)), slice(sx.start * b, min(sx.stop * b, nx)))
        for sy, sx in ndimage.find_objects(labels)
    ]


def noise_ratio(image: np.ndarray, variance: np.ndarray, mask: np.ndarray) -> float:
    """Robust (MAD) standard deviation of ``image / sqrt(variance)`` over clean pixels.

    Every third row and column is enough for the estimate and keeps it cheap.
    """
    sub = (slice(None, None, 3), slice(None, None, 3))
    m, v = mask[sub], variance[sub]
    good = ((m & (_NOT_SKY | _DROP)) == 0) & (v > 0)
    if good.sum() < 100:
        return float("nan")
    pull = image[sub][good] / np.sqrt(v[good])
    med = np.median(pull)
    return float(1.4826 * np.median(np.abs(pull - med)))


def _match(
    ref: psfmatch.Scaled, target: psfmatch.Scaled, variance: list[psfmatch.Scaled],
    bad: np.ndarray, sigmas: tuple[float, float], psfs: tuple[np.ndarray | None, np.ndarray | None],
) -> psfmatch.KernelFit:  # fmt: skip
    """Fit the kernel on star stamps, or on the PSF images when stars are too few.

    ``sigmas`` are the PSF widths (pixels) of the reference and the target.
    """
    basis_sigmas, half = psfmatch.basis_shape(*sigmas)
    stamp_half = int(np.clip(np.ceil(6.0 * sigmas[1]), 8, 24))
    stamps = psfmatch.select_stamps(
        ref, target, variance, bad, stamp_half=stamp_half, kernel_half=half
    )
    stamps = psfmatch.same_stars(stamps, half)  # not a trail the other image lacks
    if stamps.ref.shape[0] >= MIN_STAMPS:
        # Flux scale from the stars' fluxes, shape from the kernel fit (see `fit_kernel`).
        ratio = psfmatch.photometric_ratio(stamps, half)
        return psfmatch.fit_kernel(
            stamps, basis_sigmas, half, ratio if np.isfinite(ratio) and ratio > 0 else None
        )
    if psfs[0] is None or psfs[1] is None:
        raise ValueError(
            f"only {stamps.ref.shape[0]} usable stars for PSF matching and no PSF images"
        )
    return psfmatch.fit_kernel_to_psfs(psfs[0], psfs[1])


def subtract(
    science: exposure_mod.Exposure,
    template: exposure_mod.Exposure,
    *,
    scale_variance: bool = True,
    background_mesh: bool = True,
) -> DifferenceResult:
    """Science minus PSF-matched template, both on the science pixel grid.

    Parameters
    ----------
    science : Exposure
        ``(ny, nx)`` calexp: background-subtracted, ``NJY_PER_UNIT`` in metadata, PSF image.
    template : Exposure
        ``(ny, nx)`` template already warped to the science grid, nJy, with its PSF.
    scale_variance : bool
        Rescale the variance plane to the measured noise (see module docstring).
    background_mesh : bool
        Subtract a ``BACKGROUND_MESH``-pixel mesh background from the difference.

    Returns
    -------
    DifferenceResult

    Raises
    ------
    ValueError
        Shapes differ, calibration or PSF missing, or the template has no data.
    """
    _check_inputs(science, template)
    sig_s, sig_t = _psf_sigma(science, "science"), _psf_sigma(template, "template")
    conv_template = sig_t <= sig_s
    sci, tpl = _Side.of(science, "science"), _Side.of(template, "template")
    ref, target = (tpl, sci) if conv_template else (sci, tpl)
    variance = [psfmatch.Scaled(sci.variance, sci.factor**2)]
    variance.append(psfmatch.Scaled(tpl.variance, tpl.factor**2))
    bad = np.bitwise_or(science.mask, template.mask)
    bad &= _NOT_SKY  # in place: each int32 temporary is 32 MB and a pass over memory
    bad = bad != 0
    fit = _match(
        psfmatch.Scaled(ref.image, ref.factor), psfmatch.Scaled(target.image, target.factor),
        variance, bad, (sig_t, sig_s) if conv_template else (sig_s, sig_t), (ref.psf, target.psf),
    )  # fmt: skip
    del bad
    mask = _combine_masks(ref.mask, target.mask, fit.kernel.shape[0] // 2)
    _narrow_edge(mask, fit.kernel)
    diff, var, noise, bkg_rms = _difference(ref, target, fit, mask, conv_template, background_mesh)
    psf = _difference_psf(science, fit.kernel, noise, conv_template)
    result = _finish(
        science, diff, var, mask, psf, fit, conv_template, scale_variance, (sig_s, sig_t)
    )
    result.metrics["background_rms"] = bkg_rms
    # The border band's extent, for detection to measure its noise on its own.
    half = fit.kernel.shape[0] // 2
    result.difference.metadata.update(
        {"EDGEWID": min(edge_width(fit.kernel), half), "EDGEHALF": half}
    )
    return result


class _Side(NamedTuple):
    """One input of the subtraction: its planes, its factor to nJy and its PSF image."""

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    factor: float
    psf: np.ndarray | None

    @classmethod
    def of(cls, exp: exposure_mod.Exposure, name: str) -> _Side:
        factor = exposure_mod.njy_per_unit(exp.metadata, f"{name} exposure")
        return cls(exp.image, exp.variance, exp.mask, factor, exp.psf)


def _check_inputs(science: exposure_mod.Exposure, template: exposure_mod.Exposure) -> None:
    if science.shape != template.shape:
        raise ValueError(f"science {science.shape} and template {template.shape} differ in shape")
    # In bands of rows: a template with data shows it in the first band, not after a full pass.
    mask, no_data = template.mask, int(_Bit.NO_DATA)
    if not any(np.any((mask[y : y + 256] & no_data) == 0) for y in range(0, mask.shape[0], 256)):
        raise ValueError("template has no data over the science image")


def _difference(
    ref: _Side, target: _Side, fit: psfmatch.KernelFit, mask: np.ndarray,
    conv_template: bool, background_mesh: bool,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float]:  # fmt: skip
    """Science minus matched template, decorrelated, and its variance (both nJy-based).

    Returns ``(difference, variance, (s_c, s_o) median variances, background rms)``.
    """
    good = (mask & _NOT_SKY) == 0
    noise = (
        decorrelate.median_variance(ref.variance, good) * ref.factor**2,
        decorrelate.median_variance(target.variance, good) * target.factor**2,
    )
    diff = decorrelate.matched_difference(
        (ref.image, ref.factor), (target.image, target.factor), fit.kernel, noise
    )
    diff += np.float32(fit.background)
    if conv_template:
        np.negative(diff, out=diff)
    # The decorrelated noise is white: per pixel, kappa**2 times the convolved image's variance
    # plus the other's (locally); the measured noise ratio then corrects what is left.
    var = ref.variance * np.float32(fit.kernel.sum() ** 2 * ref.factor**2)
    var += target.variance * np.float32(target.factor**2)
    np.logical_not(good, out=good)
    bkg_rms = _subtract_background(diff, good) if background_mesh else 0.0
    no_data = (mask & int(_Bit.NO_DATA)) != 0
    diff[no_data] = 0.0
    var[no_data] = 0.0
    return diff, var, noise, bkg_rms


def _subtract_background(diff: np.ndarray, bad: np.ndarray) -> float:
    """Remove what is left of the two images' backgrounds on scales above the mesh, in place.

    The inputs' background models differ on large scales (a residual of a fraction of the
    pixel noise, integrated over a broad PSF, is a 5-sigma "source"); a constant term in the
    kernel fit cannot follow them. Returns the rms of the removed map (nJy).
    """
    bkg = sep.Background(
        np.ascontiguousarray(diff), mask=bad, bw=BACKGROUND_MESH, bh=BACKGROUND_MESH, fw=3, fh=3
    )
    back = bkg.back(dtype=np.float32)
    diff -= back
    # The map is a spline over 128-pixel meshes: every fourth pixel gives its rms.
    return float(np.sqrt(np.mean(np.square(back[::4, ::4], dtype=np.float64))))


def _combine_masks(ref_mask: np.ndarray, target_mask: np.ndarray, half: int) -> np.ndarray:
    """OR of both masks without detection bits, ``NO_DATA`` and ``SAT`` grown, ``EDGE`` set."""
    no_data = int(_Bit.NO_DATA)
    mask = np.bitwise_and(target_mask, ~no_data, dtype=np.int32)
    mask |= ref_mask
    mask &= ~_DROP
    # The decorrelation filter spreads the other image's no-data edges too: grow both.
    for bit, src in ((no_data, ref_mask), (int(_Bit.SAT), ref_mask), (no_data, target_mask)):
        _grow_into(mask, src, bit, half)
    mask[:half] |= int(_Bit.EDGE)
    mask[-half:] |= int(_Bit.EDGE)
    mask[:, :half] |= int(_Bit.EDGE)
    mask[:, -half:] |= int(_Bit.EDGE)
    return mask


def edge_width(kernel: np.ndarray, lost: float = EDGE_LOST_FRACTION) -> int:
    """Pixels from the border within which more than ``lost`` of ``|kernel|`` is outside.

    Pixel ``i`` from an edge misses the kernel's weight at offsets ``> i`` towards it; the
    largest of the four sides' widths is returned (at most the half-width).
    """
    w = np.abs(np.asarray(kernel, np.float64))
    half = w.shape[0] // 2
    total = float(w.sum()) or 1.0
    width = 0
    for marginal in (w.sum(axis=0), w.sum(axis=1)):
        for side in (marginal[half + 1 :], marginal[:half][::-1]):
            # beyond[i]: weight at offsets > i (offset q = 1..half is side[q - 1]).
            beyond = np.concatenate([np.cumsum(side[::-1])[::-1], [0.0]]) / total
            width = max(width, int(np.argmax(beyond <= lost)))
    return width


def _narrow_edge(mask: np.ndarray, kernel: np.ndarray) -> None:
    """``EDGE`` only as wide as `edge_width`; the rest of the half-width ``SUSPECT``; in place."""
    half, width = kernel.shape[0] // 2, edge_width(kernel)
    if width >= half:
        return
    ny, nx = mask.shape
    # The band between ``width`` and ``half`` from the border, as four strips (no full-size
    # plane): top and bottom span the columns inside ``width``, left and right the rows
    # between the top and bottom strips; bounded by ``width`` on images under 2 ``half``.
    top, bottom = min(half, ny - width), max(ny - half, width)
    left, right = min(half, nx - width), max(nx - half, width)
    strips = [
        mask[width:top, width : nx - width],
        mask[bottom : ny - width, width : nx - width],
        mask[half : ny - half, width:left],
        mask[half : ny - half, right : nx - width],
    ]
    for strip in strips:
        strip &= ~int(_Bit.EDGE)
        strip |= int(_Bit.SUSPECT)


def _finish(
    science: exposure_mod.Exposure,
    diff: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    psf: np.ndarray,
    fit: psfmatch.KernelFit,
    conv_template: bool,
    scale_variance: bool,
    sigmas: tuple[float, float],
) -> DifferenceResult:
    """Variance scaling, difference PSF, metrics and metadata."""
    ratio = noise_ratio(diff, variance, mask)
    scale = ratio**2 if scale_variance and np.isfinite(ratio) else 1.0
    variance *= np.float32(scale)
    metrics: dict[str, float] = {
        "kernel_sum": float(fit.kernel.sum()),
        "background": fit.background,
        "n_stamps": float(fit.n_stamps),
        "n_rejected": float(fit.n_rejected),
        "stamp_chi2": fit.chi2_dof,
        "noise_ratio": ratio,
        "variance_scale": float(scale),
        "sigma_science": sigmas[0],
        "sigma_template": sigmas[1],
        # A count: ``np.mean`` of the bool plane converts 8 M pixels to float64 first.
        "good_fraction": 1.0 - np.count_nonzero(mask & _NOT_SKY) / mask.size,
    }
    metadata: dict[str, Any] = dict(science.metadata)
    metadata.update({"BUNIT": "nJy", "NJY_PER_UNIT": 1.0})
    metadata["PSF_FWHM"] = psfmatch.psf_sigma(psf) * 2.3548200450309493
    metadata["CONVOLVD"] = "template" if conv_template else "science"
    metadata.update({k.upper()[:8]: v for k, v in metrics.items()})
    difference = exposure_mod.Exposure(
        image=diff.astype(np.float32, copy=False),
        mask=mask,
        variance=variance,
        wcs=science.wcs,
        psf=psf,
        metadata=metadata,
    )
    return DifferenceResult(
        difference, fit.kernel, "template" if conv_template else "science", metrics
    )


def _difference_psf(
    science: exposure_mod.Exposure,
    kernel: np.ndarray,
    noise: tuple[float, float],
    conv_template: bool,
) -> np.ndarray:
    """The science PSF through the decorrelation filter (and the kernel, if convolved)."""
    psf = science.psf
    if psf is None:
        psf = psfmatch.gaussian_psf(float(science.metadata["PSF_FWHM"]) / 2.3548200450309493)
    return decorrelate.difference_psf(
        psf.astype(np.float64), kernel, noise, through_kernel=not conv_template
    )
