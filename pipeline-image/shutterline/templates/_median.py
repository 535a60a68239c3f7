"""Median over a coadd's few inputs at each pixel, compiled (numba, one core).

`shutterline.images.stats.nanmedian` sorts the whole ``(n, pixels)`` stack along its short
axis: for 3 to 5 inputs numpy's sort calls cost more than the sorting. Here each pixel's few
values are insertion-sorted in a small buffer, in one pass; the result is the same bytes (the
two middle values added in float32, then halved, as there).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["nanmedian_inputs"]


@numba.njit(cache=True, nogil=True)
def _median_columns(values: np.ndarray, out: np.ndarray) -> None:
    n, m = values.shape
    buf = np.empty(n, values.dtype)
    half = np.float32(0.5)
    for j in range(m):
        count = 0
        for i in range(n):
            x = values[i, j]
            if x != x:  # NaN: missing
                continue
            k = count
            while k > 0 and buf[k - 1] > x:
                buf[k] = buf[k - 1]
                k -= 1
            buf[k] = x
            count += 1
        if count == 0:
            out[j] = np.nan
        else:
            out[j] = (buf[(count - 1) // 2] + buf[count // 2]) * half


def nanmedian_inputs(values: np.ndarray) -> np.ndarray:
    """``stats.nanmedian(values, axis=0)`` of a float32 ``(n, pixels)`` stack, the same bytes.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n, m)`` float32; NaN marks a missing value.

    Returns
    -------
    numpy.ndarray
        ``(m,)`` float32; NaN where every value is missing.
    """
    if values.dtype != np.float32 or values.ndim != 2:
        raise ValueError(f"expected a 2-D float32 stack, not {values.ndim}-D {values.dtype}")
    out = np.empty(values.shape[1], np.float32)
    _median_columns(values, out)  # any layout: boolean gathers hand over (n, m) in F order
    return out
