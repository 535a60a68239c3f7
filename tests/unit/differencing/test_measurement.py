"""The shifted PSF (one spectrum per PSF, a separable phase ramp) against the code it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.differencing import measurement
from tests.unit.differencing import synth


def _slow_shifted_psf(psf: np.ndarray, dy: float, dx: float, derivatives: bool) -> np.ndarray:
    """`measurement.shifted_psf` as first written: the PSF transformed and a k x k phase
    ramp evaluated at every call."""
    k = psf.shape[0]
    ky = np.fft.fftfreq(k)[:, None] * 2 * np.pi
    kx = np.fft.rfftfreq(k)[None, :] * 2 * np.pi
    spec = np.fft.rfft2(psf) * np.exp(-1j * (ky * dy + kx * dx))
    stack = np.stack([spec, spec * 1j * ky, spec * 1j * kx]) if derivatives else spec[None]
    return np.fft.irfft2(stack, s=(k, k), axes=(1, 2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shifted_psf_matches_the_slow_reference(dtype: type) -> None:
    # Two PSFs in turn (the cache must key on the pixels, not reuse the last spectrum), an
    # asymmetric one so a swapped axis shows, shifts up to a pixel and a half either way.
    round_psf = synth.gaussian_psf(3.0, size=25).astype(dtype)
    yy, xx = np.mgrid[-12:13, -12:13]
    skew = np.exp(-0.5 * ((yy - 1.0) ** 2 / 4.0 + xx**2 / 9.0 + 0.2 * xx * yy)).astype(dtype)
    skew /= skew.sum()
    before = skew.copy()
    rng = np.random.default_rng(2)
    for psf in (round_psf, skew, round_psf, skew):
        for dy, dx in rng.uniform(-1.5, 1.5, (4, 2)):
            for derivatives in (True, False):
                got = measurement.shifted_psf(psf, dy, dx, derivatives=derivatives)
                want = _slow_shifted_psf(psf, dy, dx, derivatives)
                assert got.shape == want.shape and got.dtype == np.float64
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    np.testing.assert_array_equal(skew, before)
    # The shift moves the centroid by what was asked.
    moved = measurement.shifted_psf(round_psf, 0.4, -0.7, derivatives=False)[0]
    centroid = np.array([(moved * yy).sum(), (moved * xx).sum()]) / moved.sum()
    start = np.zeros(2)
    np.testing.assert_allclose(centroid - start, [0.4, -0.7], atol=1e-3)


def _core_z(image: np.ndarray, psf: np.ndarray, static: float) -> float:
    cut = measurement.Cutter(image, np.full(image.shape, 100.0**2), np.zeros(image.shape, int))
    return measurement.fit_psf(cut, psf, 32.0, 32.0, recentre=False, static=static).chi2_z


def test_a_change_on_a_bright_star_is_not_misshapen_by_the_stars_matching_residual() -> None:
    """A 2e4 change on a 2e5 star registered 0.05 px off (each lobe of its residual 1.5 % of
    the star; sky noise 100 per pixel): the core residual is significant against the noise
    alone, not once the star's matching residual (2.5 % of it) is allowed for. The same
    residual with a faint template flux stays misshapen: the term follows the template. (The
    penalty starts at z = 5; a clean change passes either way.)"""
    psf = synth.gaussian_psf(3.0, size=25).astype(np.float64)
    moved = measurement.shifted_psf(psf, 0.0, 0.05, derivatives=False)[0]
    noise = np.random.default_rng(4).normal(0.0, 100.0, (64, 64))
    image = noise.copy()
    image[20:45, 20:45] += 2e4 * psf + 2e5 * (moved - psf)
    assert _core_z(image, psf, static=0.0) > 10.0
    assert _core_z(image, psf, static=0.025 * 2e5) < 3.0
    assert _core_z(image, psf, static=0.025 * 1e3) > 10.0
    clean = noise.copy()
    clean[20:45, 20:45] += 2e4 * psf
    assert _core_z(clean, psf, 0.0) < 5.0 and _core_z(clean, psf, 0.025 * 2e5) < 5.0
