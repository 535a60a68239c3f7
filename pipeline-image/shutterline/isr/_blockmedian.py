"""Median of each column over each block of rows, usable pixels only, compiled (numba).

`isr.columns` used to mask the frame with NaN and hand a transposed ``(nb, nx, block)``
stack to `shutterline.images.stats.nanmedian`, a full sort along the short axis. Here each
block's usable pixels are gathered row by row (contiguous reads) into one buffer per column
and the middle order statistics found by selection (quickselect), not a sort. Medians are
order statistics, so the result is the same bytes: the two middle values added in the image's
dtype, then halved, as `stats.nanmedian` does; NaN where a column's block has no usable pixel.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["block_medians"]


@numba.njit(cache=True, nogil=True)
def _select(buf: np.ndarray, n: int, k: int) -> None:
    """Partition ``buf[:n]`` in place so ``buf[k]`` is its k-th smallest and every value left
    of it is no larger (quickselect; a branch-free Lomuto partition, median-of-three pivot,
    insertion sort for the last few)."""
    lo = 0
    hi = n - 1
    while hi - lo > 8:
        mid = (lo + hi) // 2
        a, b, c = buf[lo], buf[mid], buf[hi]
        if (a <= b) == (b <= c):
            p = mid
        elif (b <= a) == (a <= c):
            p = lo
        else:
            p = hi
        pivot = buf[p]
        buf[p] = buf[hi]
        buf[hi] = pivot
        store = lo
        for i in range(lo, hi):
            x = buf[i]
            buf[i] = buf[store]
            buf[store] = x
            store += x < pivot
        buf[hi] = buf[store]
        buf[store] = pivot
        if store == k:
            return
        if k < store:
            hi = store - 1
            continue
        # Values equal to the pivot next to it, so ties (a dead column's constant) stay O(n).
        equal = store + 1
        for i in range(store + 1, hi + 1):
            x = buf[i]
            buf[i] = buf[equal]
            buf[equal] = x
            equal += x == pivot
        if k < equal:
            return
        lo = equal
    for i in range(lo + 1, hi + 1):
        x = buf[i]
        j = i
        while j > lo and buf[j - 1] > x:
            buf[j] = buf[j - 1]
            j -= 1
        buf[j] = x


@numba.njit(cache=True, nogil=True)
def _medians(image: np.ndarray, usable: np.ndarray, half: np.ndarray, out: np.ndarray) -> None:
    nb, nx = out.shape
    block = image.shape[0] // nb
    buf = np.empty((nx, block), image.dtype)
    h = half[0]  # 0.5 in the image's dtype: the sum and halving stay in it
    for b in range(nb):
        for i in range(block):  # the block, transposed: each column's values contiguous
            r = b * block + i
            for j in range(nx):
                buf[j, i] = image[r, j] if usable[r, j] else np.nan
        for j in range(nx):
            col = buf[j]
            n = 0
            for i in range(block):  # usable, non-NaN values to the front
                x = col[i]
                if x == x:
                    col[n] = x
                    n += 1
            if n == 0:
                out[b, j] = np.nan
                continue
            k = n // 2
            _select(col, n, k)
            hi = col[k]
            lo = hi
            if n % 2 == 0:  # the (k-1)-th smallest: the largest left of the k-th
                lo = col[0]
                for i in range(1, k):
                    if col[i] > lo:
                        lo = col[i]
            out[b, j] = (lo + hi) * h


def block_medians(image: np.ndarray, usable: np.ndarray, block: int) -> np.ndarray:
    """``(nb, nx)`` float64 median of each column over each block of ``block`` rows.

    ``nb = max(ny // block, 1)``; rows past ``nb * block`` are left out, and a frame shorter
    than ``block`` is one block. Only pixels where ``usable`` is true and the image is not
    NaN count; NaN where a column's block has none. The same bytes as
    `shutterline.isr.columns._block_medians_reference`.
    """
    ny, nx = image.shape
    nb = max(ny // block, 1)
    rows = nb * block if ny >= block else ny
    if image.dtype.kind != "f":
        raise ValueError(f"expected a floating-point image, not {image.dtype}")
    out = np.empty((nb, nx), np.float64)
    half = np.full(1, 0.5, image.dtype)
    _medians(np.ascontiguousarray(image[:rows]), np.ascontiguousarray(usable[:rows]), half, out)
    return out
