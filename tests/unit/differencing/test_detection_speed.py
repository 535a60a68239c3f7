"""The sped-up matched filter against the slow code it replaced (kept here, not in the package)."""

from __future__ import annotations

import numpy as np
from scipy import signal

from shutterline.differencing import detection
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
