"""Satellite streaks: found in the difference image, masked as STREAK, never DIA sources."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.differencing import dia, streaks, subtract, warp
from shutterline.images import Exposure, MaskBit

from . import synth

pytestmark = pytest.mark.slow

SHAPE = (768, 512)
FWHM_SCI = 1.1  # arcsec


def _with_streak(
    science: Exposure, x0: float, y0: float, angle_deg: float, peak_sigma: float
) -> None:
    """Add a Gaussian streak (the PSF's width) of ``peak_sigma`` sky sigma per pixel; in place."""
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(np.float64)
    a = np.radians(angle_deg)
    dist = np.abs((xx - x0) * np.sin(a) - (yy - y0) * np.cos(a))
    sigma = FWHM_SCI / synth.SCI_SCALE * synth.FWHM_TO_SIGMA
    profile = peak_sigma * np.sqrt(400.0) * np.exp(-0.5 * (dist / sigma) ** 2)
    rng = np.random.default_rng(5)
    science.image += (profile + rng.normal(size=SHAPE) * np.sqrt(profile)).astype(np.float32)
    science.variance += profile.astype(np.float32)


def _scene(
    seed: int, streak: tuple[float, float, float, float] | None, transients: np.ndarray
) -> tuple[Exposure, Exposure, Exposure]:
    rng = np.random.default_rng(seed)
    field = synth.make_field(rng, SHAPE, n_stars=250)
    fwhm_px = FWHM_SCI / synth.SCI_SCALE
    flux = np.full(len(transients), 30.0 * synth.point_sigma_njy(fwhm_px, 40.0))
    science = synth.make_science(rng, field, fwhm_px, extra=(*transients.T, flux))
    if streak is not None:
        _with_streak(science, *streak)
    patches = synth.make_template_patches(rng, field, 0.8)
    template = warp.warp_patches(patches, field.wcs, SHAPE)
    diff = subtract.subtract(science, template).difference
    return diff, science, template


#: Transients 30-60 px beside the streak and far from it.
TRANSIENTS = np.array([[230.0, 330.0], [150.0, 600.0], [420.0, 120.0], [60.0, 80.0]])


@pytest.mark.parametrize(("angle", "peak"), [(63.0, 25.0), (-20.0, 1.5)])
def test_a_streak_is_masked_and_gives_no_dia_source(angle: float, peak: float) -> None:
    x0, y0 = 256.0, 384.0
    diff, science, template = _scene(91, (x0, y0, angle, peak), TRANSIENTS)
    table = dia.detect_and_measure(diff, science, template)
    assert table.meta["n_streaks"] == 1
    a = np.radians(angle)
    line_x = x0 + np.arange(-200, 200, 10) * np.cos(a)
    line_y = y0 + np.arange(-200, 200, 10) * np.sin(a)
    inside = (line_x >= 20) & (line_x < SHAPE[1] - 20) & (line_y >= 20) & (line_y < SHAPE[0] - 20)
    on = diff.mask[np.rint(line_y[inside]).astype(int), np.rint(line_x[inside]).astype(int)]
    assert (on & int(MaskBit.STREAK)).all()
    dist = np.abs(
        (np.asarray(table["x"]) - x0) * np.sin(a) - (np.asarray(table["y"]) - y0) * np.cos(a)
    )
    assert not (dist < 15).any(), table[dist < 15]["x", "y", "psf_flux"]
    d = np.hypot(
        np.asarray(table["x"])[:, None] - TRANSIENTS[:, 0],
        np.asarray(table["y"])[:, None] - TRANSIENTS[:, 1],
    )
    found = d.min(axis=0, initial=np.inf) < 1.5
    # Every transient outside the streak's mask is found.
    t_dist = np.abs((TRANSIENTS[:, 0] - x0) * np.sin(a) - (TRANSIENTS[:, 1] - y0) * np.cos(a))
    width = streaks.find_streaks(diff.image, diff.variance, diff.mask & ~int(MaskBit.STREAK), 4.2)
    assert found[t_dist > width[0].half_width].all()
    assert len(table) - found.sum() <= 1  # the streak left no false sources behind


def test_without_the_mask_the_streak_makes_false_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    # A faint streak breaks into many footprints: a row of false sources (17 here).
    diff, science, template = _scene(91, (256.0, 384.0, -20.0, 1.5), TRANSIENTS)
    monkeypatch.setattr(streaks, "find_streaks", lambda *a, **k: [])
    table = dia.detect_and_measure(diff, science, template)
    a = np.radians(-20.0)
    dist = np.abs(
        (np.asarray(table["x"]) - 256.0) * np.sin(a) - (np.asarray(table["y"]) - 384.0) * np.cos(a)
    )
    assert (dist < 15).sum() >= 5


@pytest.mark.parametrize("seed", [92, 93, 94])
def test_no_streak_is_found_among_stars_and_transients(seed: int) -> None:
    diff, science, template = _scene(seed, None, TRANSIENTS)
    table = dia.detect_and_measure(diff, science, template)
    assert table.meta["n_streaks"] == 0
    assert not (diff.mask & int(MaskBit.STREAK)).any()


def test_a_short_trail_is_no_streak() -> None:
    # A fast asteroid's trail (40 px, far under MIN_LENGTH_PX) stays a DIA source.
    snr = np.zeros(SHAPE)
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    along, across = xx - 250.0, yy - 300.0
    snr += 20.0 * np.exp(-0.5 * (across / 1.8) ** 2) * (np.abs(along) < 20)
    found = streaks.find_streaks(
        snr.astype(np.float32), np.ones(SHAPE, np.float32), np.zeros(SHAPE, np.int32), 4.2
    )
    assert found == []


def _reference_snr_blocks(
    image: np.ndarray, variance: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The numpy version the compiled `streaks._snr_blocks` replaced: (snr image, blocks)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(
            ((mask & streaks._UNUSABLE) == 0) & (variance > 0), image / np.sqrt(variance), 0.0
        ).astype(np.float32)
    b = streaks.BIN
    ny, nx = (s // b * b for s in snr.shape)
    blocks = snr[:ny, :nx].reshape(ny // b, b, nx // b, b).sum(axis=(1, 3)) / b
    return np.nan_to_num(snr), np.nan_to_num(blocks)


def test_compiled_snr_blocks_match_the_slow_reference() -> None:
    # A difference image with a streak, cropped to a shape that is no multiple of BIN, with
    # NaN pixels, masked pixels and pixels without variance.
    diff, _, _ = _scene(91, (256.0, 384.0, 63.0, 25.0), TRANSIENTS)
    image, variance = diff.image[:766, :510].copy(), diff.variance[:766, :510].copy()
    mask = diff.mask[:766, :510].copy()
    rng = np.random.default_rng(3)
    for plane, value in ((image, np.nan), (variance, 0.0), (variance, np.nan)):
        plane[rng.integers(0, 766, 40), rng.integers(0, 510, 40)] = value
    mask[rng.integers(0, 766, 200), rng.integers(0, 510, 200)] |= int(MaskBit.SAT)
    snr, blocks = _reference_snr_blocks(image, variance, mask)
    fast = streaks._snr_blocks(image, variance, mask)
    assert fast.shape == blocks.shape == (191, 127)
    np.testing.assert_allclose(fast, blocks, rtol=1e-5, atol=1e-5)
    assert np.array_equal(fast > streaks.BLOCK_SNR, blocks > streaks.BLOCK_SNR)
    assert (blocks > streaks.BLOCK_SNR).sum() > 100  # the streak votes
    assert (blocks == 0).sum() >= 40  # the blocks with a NaN pixel count 0 in both
    # The profile's signal-to-noise, now computed at its sample points, is the same.
    np.testing.assert_array_equal(streaks._usable_snr(image, variance, mask), snr)
