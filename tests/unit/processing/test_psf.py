"""PSF model: FWHM measurement, polynomial pixel fit, spatial variation."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.processing import psf, stamps
from tests.unit.processing import synthetic


def _image(
    fwhm: float, beta: float | None, half: int = 20, dx: float = 0.0, dy: float = 0.0
) -> np.ndarray:
    g = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    img = synthetic._profile(g[1] - dx, g[0] - dy, fwhm, beta, 0.0)
    return img / img.sum()


@pytest.mark.parametrize("beta", [None, 2.5, 4.0])
@pytest.mark.parametrize("fwhm", [3.04, 5.0, 7.6])
def test_measure_fwhm_any_profile(fwhm: float, beta: float | None) -> None:
    assert psf.measure_fwhm(_image(fwhm, beta)) == pytest.approx(fwhm, rel=0.01)


def test_polynomial_terms_order() -> None:
    terms = psf.polynomial_terms(np.array([2.0]), np.array([3.0]), 2)
    assert terms.tolist() == [[1.0, 2.0, 3.0, 4.0, 6.0, 9.0]]


def test_fourier_shift_moves_centroid() -> None:
    img = _image(4.0, None)[None]
    out = stamps.fourier_shift(img, np.array([0.3]), np.array([-0.4]))[0]
    g = np.mgrid[-20:21, -20:21]
    assert (out * g[1]).sum() / out.sum() == pytest.approx(-0.4, abs=1e-3)
    assert (out * g[0]).sum() / out.sum() == pytest.approx(0.3, abs=1e-3)


def test_broadcast_shift_matches_one_image_per_shift() -> None:
    """A stack shifted many ways at once (each image transformed once) gives the same bytes
    as the stack repeated, one image per shift: the speed-up in `_phase_images` is free."""
    terms = np.random.default_rng(3).normal(size=(4, 41, 41))
    dy, dx = np.linspace(-0.5, 0.5, 5), np.linspace(0.4, -0.3, 5)
    fast = stamps.fourier_shift(terms, dy[:, None], dx[:, None])
    slow = stamps.fourier_shift(np.tile(terms, (5, 1, 1)), np.repeat(dy, 4), np.repeat(dx, 4))
    assert fast.shape == (5, 4, 41, 41)
    assert fast.tobytes() == slow.tobytes()


def test_fit_recovers_linear_fwhm_variation() -> None:
    rng = np.random.default_rng(5)
    shape = (4096, 2048)
    n = 120
    x, y = rng.uniform(0, shape[1], n), rng.uniform(0, shape[0], n)
    fwhm = 4.0 * (1.0 + 0.1 * (y - 2048) / 2048)  # 3.6 at the bottom, 4.4 at the top
    noise = 1e-4
    st = np.stack([_image(f, 3.0) for f in fwhm]) + rng.normal(0, noise, (n, 41, 41))
    model = psf.fit_psf_model(st, np.full(n, noise**2), x, y, shape)
    assert model.degree == 2
    assert model.fwhm_at(1024, 0) == pytest.approx(3.6, rel=0.02)
    assert model.fwhm_at(1024, 4095) == pytest.approx(4.4, rel=0.02)
    image = model.image_at(500.0, 3000.0)
    assert image.shape == (41, 41)
    assert float(image.sum()) == pytest.approx(1.0, abs=1e-5)


def test_outlier_star_is_clipped() -> None:
    rng = np.random.default_rng(6)
    n = 20
    st = np.stack([_image(4.0, None) for _ in range(n)]) + rng.normal(0, 1e-4, (n, 41, 41))
    st[3] = _image(9.0, None)  # a galaxy that slipped through
    model = psf.fit_psf_model(st, np.full(n, 1e-8), np.zeros(n), np.zeros(n), (100, 100))
    assert model.n_stars == n - 1
    assert model.fwhm == pytest.approx(4.0, rel=0.01)
