"""The compiled box mean gives scipy's ``uniform_filter`` bytes (the coadd's smoothing)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from shutterline.templates import _box


@pytest.mark.parametrize("size", [(3, 3), (5, 5), (9, 1), (1, 7), (1, 1), (4, 2), (15, 15)])
def test_equals_scipy_uniform_filter(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size))
    # Heavy-tailed values over a wide range, so rounding differences would show.
    plane = (rng.normal(0, 1, (157, 203)) * rng.lognormal(0, 3, (157, 203))).astype(np.float32)
    plane[40:60, 70:90] = 0.0
    want = ndimage.uniform_filter(plane, size, mode="constant")
    got = _box.box_mean(plane, *size)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_plane_smaller_than_box_and_views() -> None:
    plane = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(
        _box.box_mean(plane, 9, 9), ndimage.uniform_filter(plane, 9, mode="constant")
    )
    view = np.arange(400, dtype=np.float32).reshape(20, 20)[::2, 1::3]
    np.testing.assert_array_equal(
        _box.box_mean(view, 3, 3), ndimage.uniform_filter(view, 3, mode="constant")
    )
    with pytest.raises(ValueError, match="float32"):
        _box.box_mean(plane.astype(np.float64), 3, 3)
