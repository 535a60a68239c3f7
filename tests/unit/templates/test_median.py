"""The compiled median over a coadd's inputs gives `stats.nanmedian`'s bytes."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.images import stats
from shutterline.templates import _median


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8])
def test_equals_the_numpy_sort_median(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.normal(0, 1, (n, 20000)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    values[:, :7] = np.nan  # no input at all
    values[:, 7:40] = np.round(values[:, 7:40])  # ties, zeros of both signs
    values[0, 40:60] = -0.0
    got = _median.nanmedian_inputs(values)
    want = stats.nanmedian(values, axis=0)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.int32) & 0x7FFFFFFF, want.view(np.int32) & 0x7FFFFFFF)
    assert np.isnan(got[:7]).all()


def test_non_contiguous_input_and_bad_dtype() -> None:
    values = np.arange(60, dtype=np.float32).reshape(6, 10)[:, ::2]
    np.testing.assert_array_equal(_median.nanmedian_inputs(values), stats.nanmedian(values, 0))
    fortran = np.asfortranarray(values)  # what a boolean gather of a stack hands over
    np.testing.assert_array_equal(_median.nanmedian_inputs(fortran), stats.nanmedian(values, 0))
    with pytest.raises(ValueError, match="float32"):
        _median.nanmedian_inputs(values.astype(np.float64))
