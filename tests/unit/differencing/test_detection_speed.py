"""The sped-up matched filter against the slow code it replaced (kept here, not in the package)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, signal

from shutterline.differencing import detection, psfmatch
from shutterline.images import Exposure, MaskBit
from tests.unit.differencing import synth


def _slow_snr_map(difference: Exposure) -> np.ndarray:
    """The matched filter as first written: float64 direct FFT, one temporary per step."""
    assert difference.psf is not None
    psf = difference.psf.astype(np.float64)
    mask = difference.mask
    no_signal = (mask & (MaskBit.NO_DATA | MaskBit.EDGE | MaskBit.SAT)) != 0
    no_signal |= ((mask & (MaskBit.BAD | MaskBit.CR)) != 0) & ((mask & MaskBit.INTRP) == 0)
    image = np.where(no_signal, 0.0, difference.image.astype(np.float64))
    filtered = signal.fftconvolve(image, psf[::-1, ::-1], mode="same")
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = filtered / (np.sqrt(difference.variance) * np.sqrt((psf**2).sum()))
    snr[no_signal | ~np.isfinite(snr)] = 0.0
    return snr


def test_matched_filter_matches_the_slow_reference() -> None:
    rng = np.random.default_rng(11)
    shape = (300, 200)
    psf = synth.gaussian_psf(4.0, size=25)
    image = rng.normal(0.0, 10.0, shape).astype(np.float32)
    image[150:175, 90:115] += 2000.0 * psf  # a source the filter must find
    variance = np.full(shape, 100.0, np.float32)
    variance[40:44, 10:20] = 0.0  # no variance: no signal-to-noise, not inf
    mask = np.zeros(shape, np.int32)
    mask[:5] |= MaskBit.EDGE
    mask[200:205, 50:60] |= MaskBit.SAT
    mask[100:103, 30] |= MaskBit.BAD  # not interpolated: zeroed
    mask[110:113, 31] |= MaskBit.BAD | MaskBit.INTRP  # interpolated: kept
    diff = Exposure(image, mask, variance, psf=psf)
    fast = detection.snr_map(diff)
    slow = _slow_snr_map(diff)
    assert fast.dtype == np.float32
    # float32 transforms against float64: equal to a few parts in a million of the noise.
    np.testing.assert_allclose(fast, slow, atol=2e-4)
    assert fast[162, 102] > 20 and np.all(fast[40:44, 10:20] == 0)


def _two_labellings(snr: np.ndarray, threshold: float) -> list[tuple]:
    """The footprints as they were found before: one labelling per sign."""
    out = []
    for sign in (1, -1):
        signed = snr if sign > 0 else -snr
        labels, _ = ndimage.label(signed >= threshold)
        for i, sl in enumerate(ndimage.find_objects(labels), start=1):
            own = labels[sl] == i
            values = np.where(own, signed[sl], -np.inf)
            iy, ix = np.unravel_index(int(np.argmax(values)), values.shape)
            box = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
            peak = sign * float(values[iy, ix])
            out.append((sl[0].start + int(iy), sl[1].start + int(ix), peak, box, int(own.sum())))
    return out


def test_one_labelling_gives_the_footprints_of_two() -> None:
    # Sources of both signs, dipoles whose lobes touch (one footprint of |snr| holding both
    # signs, split again), a ring of one sign around the other, and noise peaks.
    rng = np.random.default_rng(12)
    snr = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (400, 300)), 1.5) * 4.0
    yy, xx = np.mgrid[0:400, 0:300]
    for y, x, amp in ((50, 60, 30.0), (200, 150, -25.0), (330, 40, 12.0), (120, 250, -9.0)):
        snr += amp * np.exp(-0.5 * ((yy - y) ** 2 + (xx - x) ** 2) / 2.0**2)
    for y, x in ((300, 200), (80, 150)):  # dipoles: a positive half-disc against a negative
        snr += np.where(np.hypot(yy - y, xx - x) < 5, np.where(xx >= x, 30.0, -30.0), 0.0)
    r = np.hypot(yy - 260, xx - 260)
    snr += np.where(r < 4, -20.0, 0.0) + np.where((r >= 4) & (r < 8), 20.0, 0.0)
    snr = snr.astype(np.float32)
    fast = detection._footprints(snr, 5.0)
    slow = _two_labellings(snr, 5.0)
    assert fast == slow
    mixed = ndimage.label(np.abs(snr) >= 5.0)[1]
    assert len(slow) >= mixed + 3  # three footprints of |snr| held both signs
    assert sum(1 for r in slow if r[2] > 0) >= 5 and sum(1 for r in slow if r[2] < 0) >= 5


def _labelled(snr: np.ndarray, threshold: float) -> list[tuple]:
    """The footprints of ``|snr| >= threshold`` as `ndimage` found them before
    `detection._hit_footprints`: box and pixels per label."""
    labels, _ = ndimage.label(np.abs(snr) >= threshold)
    return [
        ((sl[0].start, sl[0].stop, sl[1].start, sl[1].stop), (labels[sl] == i).tobytes())
        for i, sl in enumerate(ndimage.find_objects(labels), start=1)
    ]


@pytest.mark.parametrize(
    ("dtype", "threshold"),
    [(np.float32, 5.0), (np.float32, 4.7), (np.float32, np.float64(4.7)), (np.float64, 4.7)],
)
def test_footprints_from_the_hits_are_ndimages(dtype: type, threshold: float) -> None:
    """The same footprints as ``ndimage.label`` and ``find_objects``: 4-connected (diagonal
    neighbours apart, no wrap from a row's end to the next row's start), on the borders,
    single pixels, NaN, a threshold compared as NumPy would (4.7 differs in float32)."""
    rng = np.random.default_rng(14)
    snr = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (120, 90)), 1.0) * 9.0
    snr[0, :5] = snr[-1, -5:] = snr[:, 0] = 6.0  # on every border
    snr[40, -1] = snr[41, 0] = -6.0  # a row's end and the next row's start
    snr[60, 60] = snr[61, 61] = 6.0  # diagonal only
    snr[61, 60] = snr[60, 61] = 0.0
    snr[80:83, 30] = [np.nan, 6.0, np.nan]
    snr[90, 10] = 4.7  # at the threshold
    snr = snr.astype(dtype)
    got = [
        ((sl[0].start, sl[0].stop, sl[1].start, sl[1].stop), own.tobytes())
        for sl, own in detection._hit_footprints(snr, threshold)
    ]
    assert sorted(got) == sorted(_labelled(snr, threshold))
    assert all(type(v) is int for box, _ in got for v in box)
    assert detection._footprints(snr, 5.0) == _two_labellings(snr, 5.0)
    assert list(detection._hit_footprints(np.zeros((4, 3), dtype), threshold)) == []


def test_compiled_masking_and_division_give_the_numpy_bits() -> None:
    # The numpy passes the two compiled loops of `snr_map` replaced, on every mask case:
    # no-signal bits, unrepaired and interpolated bad pixels, zero and NaN variance.
    rng = np.random.default_rng(13)
    shape = (64, 48)
    image = rng.normal(0.0, 10.0, shape).astype(np.float32)
    variance = rng.uniform(50.0, 150.0, shape).astype(np.float32)
    variance[rng.random(shape) < 0.05] = 0.0
    variance[rng.random(shape) < 0.05] = np.nan
    bits = [0, MaskBit.EDGE, MaskBit.STREAK, MaskBit.BAD, MaskBit.CR | MaskBit.INTRP, MaskBit.SAT]
    mask = rng.choice(np.array(bits, np.int32), shape).astype(np.int32)
    no_signal = (mask & detection._NO_SIGNAL) != 0
    no_signal |= ((mask & detection._UNREPAIRED) != 0) & ((mask & MaskBit.INTRP) == 0)
    np.testing.assert_array_equal(
        detection._zero_no_signal(image, mask), np.where(no_signal, np.float32(0), image)
    )
    norm = np.float32(0.37)
    denom = np.sqrt(variance) * norm
    with np.errstate(divide="ignore", invalid="ignore"):
        slow = image / denom
    slow[no_signal | ~(denom > 0)] = 0.0
    fast = image.copy()
    detection._divide_by_noise(fast, variance, mask, norm)
    np.testing.assert_array_equal(fast, slow)
    assert (fast == 0).sum() > 0.2 * fast.size and (fast != 0).sum() > 0.2 * fast.size


def _svd_spectrum(kernel: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """`psfmatch.kernel_spectrum` as it was for every rank: outer products of 1-D transforms."""
    kh, kw = kernel.shape[0] // 2, kernel.shape[1] // 2
    u, sv, vt = np.linalg.svd(kernel.astype(np.float64))
    rank = max(int(np.sum(sv > sv[0] * 1e-7)), 1)
    ey = np.exp(-2j * np.pi * np.outer(np.fft.fftfreq(fy), np.arange(-kh, kh + 1)))
    ex = np.exp(-2j * np.pi * np.outer(np.fft.rfftfreq(fx), np.arange(-kw, kw + 1)))
    left = (ey @ (u[:, :rank] * sv[:rank])).astype(np.complex64)
    return left @ (ex @ vt[:rank].T).astype(np.complex64).T


def _padded_spectrum(kernel: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """The definition, in float64: the kernel centred at the origin of a zero plane, rfft2."""
    kh = kernel.shape[0] // 2
    plane = np.zeros((fy, fx))
    plane[: kernel.shape[0], : kernel.shape[1]] = kernel
    return np.fft.rfft2(np.roll(plane, (-kh, -kh), axis=(0, 1)))


def test_high_rank_kernel_spectrum_matches_the_outer_products_and_the_definition() -> None:
    # A circular, non-Gaussian profile with a faint wing (like the difference image's PSF,
    # 105 px and rank 67 on the bench detector) goes the 1-D-transform way; a separable
    # Gaussian keeps the outer products. Both within float32 rounding of the definition.
    yy, xx = np.mgrid[-52:53, -52:53]
    moffat = (1.0 + (yy**2 + 0.7 * xx**2 + 0.3 * xx * yy) / 9.0) ** -2.5
    moffat += 1e-4 * np.random.default_rng(3).random(moffat.shape)
    moffat /= moffat.sum()
    sv = np.linalg.svd(moffat, compute_uv=False)
    assert np.sum(sv > sv[0] * 1e-7) > psfmatch._PRUNED_RANK
    gauss = synth.gaussian_psf(3.0, size=41).astype(np.float64)
    for kernel, (fy, fx) in ((moffat, (480, 270)), (gauss, (450, 250))):
        got = psfmatch.kernel_spectrum(kernel, fy, fx)
        assert got.shape == (fy, fx // 2 + 1) and got.dtype == np.complex64
        np.testing.assert_allclose(got, _padded_spectrum(kernel, fy, fx), rtol=0, atol=2e-6)
        np.testing.assert_allclose(got, _svd_spectrum(kernel, fy, fx), rtol=0, atol=2e-6)
    # Through the matched filter's convolution: the direct float64 convolution.
    image = np.random.default_rng(4).normal(0.0, 10.0, (300, 200)).astype(np.float32)
    want = signal.fftconvolve(image.astype(np.float64), moffat, mode="same")
    np.testing.assert_allclose(psfmatch.convolve(image, moffat), want, rtol=0, atol=2e-4)
