"""Stamps: flux conserved, centroid and FWHM as asked, extended sources wider."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.simulate import render


def _half_max_radius(image: np.ndarray, x: float, y: float) -> float:
    yy, xx = np.indices(image.shape)
    r = np.hypot(xx - x, yy - y).ravel()
    v = image.ravel()
    order = np.argsort(r)
    r, v = r[order], v[order]
    half = v[:5].mean() / 2
    return float(r[np.argmax(v < half)])


@pytest.mark.parametrize("fwhm", [3.0, 5.0, 7.6])
def test_point_source_flux_centroid_and_fwhm(fwhm: float) -> None:
    image = np.zeros((121, 121), dtype=np.float32)
    render.render_sources(image, [60.25], [59.7], [1.0e6], fwhm)
    assert image.sum() == pytest.approx(1.0e6, rel=1e-5)
    yy, xx = np.indices(image.shape)
    assert (image * xx).sum() / image.sum() == pytest.approx(60.25, abs=1e-3)
    assert (image * yy).sum() / image.sum() == pytest.approx(59.7, abs=1e-3)
    # Pixelisation blurs a little; the discrete radius is good to half a pixel.
    assert 2 * _half_max_radius(image, 60.25, 59.7) == pytest.approx(fwhm, abs=1.0)


def test_sources_off_the_edge_add_only_their_overlap() -> None:
    image = np.zeros((50, 50), dtype=np.float32)
    render.render_sources(image, [-0.5, 25.0], [25.0, 49.5], [1000.0, 1000.0], 4.0)
    assert 900 < image.sum() < 1100  # half of each
    before = image.copy()
    render.render_sources(image, [], [], [], 4.0)
    np.testing.assert_array_equal(image, before)


def test_extended_source_is_wider_along_its_long_axis() -> None:
    image = np.zeros((101, 101), dtype=np.float32)
    render.render_sources(image, [50.0], [50.0], [1.0e5], 4.0, [6.0], [2.0])
    assert image.sum() == pytest.approx(1.0e5, rel=1e-5)
    assert image[50, 40] > 3 * image[40, 50]
