"""The sort-based NaN median against numpy's (the code it replaced in ISR and the coadd)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from shutterline.images import stats


@pytest.mark.parametrize(("shape", "axis"), [((3, 5000), 0), ((4, 2, 3000), 0), ((7, 37, 128), -1)])
def test_nanmedian_equals_numpys(shape: tuple[int, ...], axis: int) -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(100.0, 10.0, shape).astype(np.float32)
    values[rng.random(shape) < 0.3] = np.nan  # odd, even, single and no values left
    np.moveaxis(values, axis, 0)[:, 0] = np.nan  # whole slices along the axis missing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on all-NaN slices
        slow = np.nanmedian(values, axis=axis)
    fast = stats.nanmedian(values, axis=axis)
    assert fast.dtype == slow.dtype and fast.shape == slow.shape
    np.testing.assert_array_equal(fast, slow)  # bit for bit, NaN where numpy has NaN
    assert np.isnan(fast).any() and not np.isnan(fast).all()


@pytest.mark.parametrize("size", [1, 3, 21])
def test_dilate_square_equals_binary_dilation(size: int) -> None:
    """The separable dilation against the 2-D one it replaced in the coadd, edges included."""
    from scipy import ndimage

    from shutterline.images import mask

    rng = np.random.default_rng(size)
    plane = rng.random((301, 257)) < 0.002
    plane[0, 5] = plane[-1, -1] = plane[150, 0] = True  # at the edges
    slow = ndimage.binary_dilation(plane, np.ones((size, size), bool))
    np.testing.assert_array_equal(mask.dilate_square(plane, size), slow)
    view = plane[::2, 1::3]  # not contiguous
    expected = ndimage.binary_dilation(view, np.ones((size, size), bool))
    np.testing.assert_array_equal(mask.dilate_square(view, size), expected)
    with pytest.raises(ValueError, match="odd size"):
        mask.dilate_square(plane, 4)
