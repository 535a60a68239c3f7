"""Subtraction: static stars go to the noise, variance matches it, masks and errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shutterline.differencing import detection, dia, subtract
from shutterline.images import MaskBit
from tests.unit.differencing import synth

#: (science FWHM, template FWHM) in arcsec: template sharper, blurrier, about equal.
CASES = [(1.0, 0.7), (0.9, 1.4), (1.2, 1.15)]
#: Stars per megapixel of a sparse field, where a trail can give most of the stamps.
SPARSE = 150.0


@pytest.mark.parametrize(("fwhm_sci", "fwhm_tpl"), CASES)
def test_static_stars_subtract_to_noise(fwhm_sci: float, fwhm_tpl: float) -> None:
    pair = synth.make_pair(11, fwhm_sci, fwhm_tpl, spacing=10_000)  # no injections
    res = subtract.subtract(pair.science, pair.template)
    assert res.convolved == ("template" if fwhm_tpl <= fwhm_sci else "science")
    # Measured pixel noise against the propagated variance, before any rescaling.
    assert res.metrics["noise_ratio"] == pytest.approx(1.0, abs=0.1)
    assert res.metrics["kernel_sum"] == pytest.approx(1.0, abs=0.01)
    assert res.metrics["n_stamps"] >= 10
    det = detection.detect(res.difference, 5.0)
    # ~100 stars up to 3e5 nJy (peak SNR ~ 1000): none may leave a 5-sigma residual.
    assert len(det) <= 1


def test_kernel_sum_is_the_photometric_ratio() -> None:
    pair = synth.make_pair(12, 1.0, 0.7, spacing=10_000)
    template = dataclasses.replace(pair.template, image=pair.template.image * np.float32(0.8))
    template.variance = pair.template.variance * np.float32(0.64)
    res = subtract.subtract(pair.science, template)
    assert res.metrics["kernel_sum"] == pytest.approx(1 / 0.8, rel=0.01)
    assert res.metrics["noise_ratio"] == pytest.approx(1.0, abs=0.1)


def test_masks_are_combined_and_grown() -> None:
    pair = synth.make_pair(13, 1.0, 0.7, spacing=10_000)
    pair.template.mask[200:210, 100:110] |= int(MaskBit.NO_DATA)
    pair.science.mask[300, 50] |= int(MaskBit.CR) | int(MaskBit.DETECTED)
    sci_before = pair.science.image.copy()
    res = subtract.subtract(pair.science, pair.template)
    np.testing.assert_array_equal(pair.science.image, sci_before)
    mask = res.difference.mask
    half = res.kernel.shape[0] // 2
    no_data = (mask & int(MaskBit.NO_DATA)) != 0
    assert no_data[200 - half, 100 - half] and no_data[209 + half, 109 + half]
    assert not no_data[200 - half - 2, 100]
    assert np.all(res.difference.image[no_data] == 0)
    assert mask[300, 50] & int(MaskBit.CR)
    assert not (mask & int(MaskBit.DETECTED)).any()
    edge = (mask & int(MaskBit.EDGE)) != 0
    width = subtract.edge_width(res.kernel)
    assert edge[:width].all() and edge[:, -width:].all() and not edge[width + 1, width + 1]
    suspect = (mask & int(MaskBit.SUSPECT)) != 0
    assert suspect[width:half, 200].all() and not suspect[half + 1, 200]


@pytest.mark.parametrize(("fwhm_sci", "fwhm_tpl"), [(1.0, 0.7), (0.9, 1.4)])
def test_difference_psf_describes_sources(fwhm_sci: float, fwhm_tpl: float) -> None:
    pair = synth.make_pair(14, fwhm_sci, fwhm_tpl, snr=40.0)
    res = subtract.subtract(pair.science, pair.template)
    fwhm = res.difference.metadata["PSF_FWHM"] * synth.SCI_SCALE
    # Decorrelation sharpens a convolved science PSF again, but not past the science's own.
    assert fwhm_sci * 0.97 <= fwhm <= max(fwhm_sci, fwhm_tpl) * 1.03
    table = dia.detect_and_measure(res.difference, pair.science, pair.template)
    d = np.hypot(np.asarray(table["x"])[:, None] - pair.x, np.asarray(table["y"])[:, None] - pair.y)
    ok = d.min(axis=1) < 2
    ratio = np.asarray(table["psf_flux"])[ok] / pair.flux[d.argmin(axis=1)[ok]]
    assert ok.sum() >= 30
    # A PSF of the wrong width would bias every PSF flux; SNR 40 gives 2.5 % per source.
    assert np.median(ratio) == pytest.approx(1.0, abs=0.015)
    assert res.difference.metadata["BUNIT"] == "nJy"
    assert res.difference.metadata["NJY_PER_UNIT"] == 1.0


def test_few_stars_fall_back_to_psf_images() -> None:
    pair = synth.make_pair(15, 1.0, 0.7, spacing=10_000, stars_per_mpix=0.0)
    res = subtract.subtract(pair.science, pair.template)
    assert res.metrics["n_stamps"] == 0
    assert res.metrics["kernel_sum"] == pytest.approx(1.0, abs=0.02)
    assert res.metrics["noise_ratio"] == pytest.approx(1.0, abs=0.1)


def test_errors_name_the_problem() -> None:
    pair = synth.make_pair(16, 1.0, 0.7, shape=(256, 192), spacing=10_000)
    small = dataclasses.replace(
        pair.template,
        image=pair.template.image[:100],
        mask=pair.template.mask[:100],
        variance=pair.template.variance[:100],
    )
    with pytest.raises(ValueError, match="differ in shape"):
        subtract.subtract(pair.science, small)
    empty = dataclasses.replace(pair.template, mask=np.full_like(pair.template.mask, 16))
    with pytest.raises(ValueError, match="template has no data"):
        subtract.subtract(pair.science, empty)
    uncalibrated = dataclasses.replace(pair.science, metadata={"BUNIT": "electron"})
    with pytest.raises(ValueError, match="NJY_PER_UNIT"):
        subtract.subtract(uncalibrated, pair.template)


def test_large_scale_background_difference_is_removed() -> None:
    pair = synth.make_pair(17, 1.0, 0.7, spacing=10_000)
    # A background-model error of half the pixel noise over a 200-pixel patch: integrated over
    # the PSF it would be a ~5-sigma "source" without the difference-image background.
    yy, xx = np.mgrid[: pair.science.shape[0], : pair.science.shape[1]]
    bump = 10.0 * np.exp(-0.5 * ((yy - 250) ** 2 + (xx - 190) ** 2) / 100.0**2)
    pair.science.image += bump.astype(np.float32)
    res = subtract.subtract(pair.science, pair.template)
    assert res.metrics["background_rms"] > 2.0
    with_mesh = detection.detect(res.difference, 5.0)
    assert len(with_mesh) <= 1
    assert with_mesh.noise_scale == pytest.approx(1.0, abs=0.1)
    # Without it the bump passes for noise: the matched filter's noise looks 20 % higher and
    # every real source loses that much significance.
    raw = subtract.subtract(pair.science, pair.template, background_mesh=False)
    assert detection.detect(raw.difference, 5.0).noise_scale > 1.15


def _reference_combine_masks(ref: np.ndarray, target: np.ndarray, half: int) -> np.ndarray:
    """The slow reference the block-restricted growth replaced: each bit grown by a square
    maximum filter over the whole frame."""
    from scipy import ndimage

    def grown(mask: np.ndarray, bit: int) -> np.ndarray:
        plane = ((mask & bit) != 0).astype(np.uint8)
        return ndimage.maximum_filter(plane, size=2 * half + 1, mode="constant").astype(bool)

    no_data, sat = int(MaskBit.NO_DATA), int(MaskBit.SAT)
    drop = int(MaskBit.DETECTED | MaskBit.DETECTED_NEGATIVE)
    out = (ref | (target & ~no_data)) & ~drop
    out[grown(ref, no_data) | grown(target, no_data)] |= no_data
    out[grown(ref, sat)] |= sat
    edge = np.zeros(out.shape, bool)
    edge[:half], edge[-half:], edge[:, :half], edge[:, -half:] = True, True, True, True
    out[edge] |= int(MaskBit.EDGE)
    return out.astype(np.int32)


@pytest.mark.parametrize("half", [3, 11, 21])
def test_combined_mask_matches_the_whole_frame_reference(half: int) -> None:
    rng = np.random.default_rng(half)
    shape = (300, 230)
    ref = np.zeros(shape, np.int32)
    target = np.zeros(shape, np.int32)
    for y, x in rng.integers(0, 230, (12, 2)):  # saturated cores, some near an edge
        ref[y : y + 3, x : x + 2] |= int(MaskBit.SAT)
    ref[:, 200:] |= int(MaskBit.NO_DATA)  # a template edge
    target[150:152, 40:60] |= int(MaskBit.NO_DATA)
    ref[rng.random(shape) < 0.01] |= int(MaskBit.CR | MaskBit.DETECTED)
    target[rng.random(shape) < 0.01] |= int(MaskBit.BAD | MaskBit.SAT)
    got = subtract._combine_masks(ref, target, half)
    np.testing.assert_array_equal(got, _reference_combine_masks(ref, target, half))


@pytest.mark.parametrize("where", ["science", "template"])
def test_satellite_trail_does_not_make_the_kernel(where: str) -> None:
    # Stamps are picked on the brightest pixel of the blurrier image's cells: a trail across
    # it gave most of them (a trail in the science of seed 101 100015/28: stamp chi2 277, the
    # kernel's shape off and every static star left a residual, 23 false DIA sources).
    pair = synth.make_pair(18, 1.2, 0.8, spacing=10_000, stars_per_mpix=SPARSE)
    if where == "template":
        pair = synth.make_pair(18, 0.8, 1.2, spacing=10_000, stars_per_mpix=SPARSE)
    exp = getattr(pair, where)
    yy, xx = np.mgrid[: exp.shape[0], : exp.shape[1]]
    dist = np.abs(0.8 * xx - 0.6 * yy + 40.0)
    peak = 300.0 * float(np.sqrt(np.median(exp.variance)))
    exp.image += (peak * np.exp(-0.5 * (dist / 2.0) ** 2)).astype(np.float32)
    res = subtract.subtract(pair.science, pair.template)
    assert res.convolved != where
    assert res.metrics["stamp_chi2"] < 3.0
    assert res.metrics["kernel_sum"] == pytest.approx(1.0, abs=0.01)
    det = detection.detect(res.difference, 5.0)
    off_trail = np.abs(0.8 * det.x - 0.6 * det.y + 40.0) > 15.0
    assert off_trail.sum() <= 1
