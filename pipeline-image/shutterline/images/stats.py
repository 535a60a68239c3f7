"""Statistics over short axes of image stacks, where numpy's own are slow.

``np.nanmedian`` over a short axis (3 coadd inputs, 128 rows of a block) takes numpy's
masked-array path: 0.29 s for a 3 x 1 M stack, against 0.09 s for one sort here (measured).
"""

from __future__ import annotations

import numpy as np

__all__ = ["nanmedian"]


def nanmedian(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """``np.nanmedian(values, axis)``, equal to it, by one sort (NaN sort last).

    Parameters
    ----------
    values : numpy.ndarray
        Floating-point array; NaN marks a missing value.
    axis : int
        The axis to reduce.

    Returns
    -------
    numpy.ndarray
        ``values``' dtype, ``axis`` removed; NaN where every value is missing (silently,
        where numpy warns).
    """
    ordered = np.sort(values, axis=axis)
    count = np.count_nonzero(~np.isnan(values), axis=axis, keepdims=True)
    lo = np.take_along_axis(ordered, np.maximum(count - 1, 0) // 2, axis=axis)
    hi = np.take_along_axis(ordered, count // 2 - (count == 0), axis=axis)
    median = np.add(lo, hi)
    median *= median.dtype.type(0.5)  # the mean of the two middle values, as numpy's
    median[count == 0] = np.nan
    return np.squeeze(median, axis=axis)
