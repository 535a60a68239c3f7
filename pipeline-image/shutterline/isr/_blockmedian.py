"""Median of each column over each block of rows, usable pixels only, compiled (numba).

`isr.columns` used to mask the frame with NaN and hand a transposed ``(nb, nx, block)``
stack to `shutterline.images.stats.nanmedian`, a full sort along the short axis. Here each
block's usable pixels are gathered row by row (contiguous reads) into one buffer per column
and the middle order statistics found by selection (quickselect), not a sort; first among the
values near the column before's median only, when the middle ones are among them (one pass
and a small select, about 40 % less time on a 4096 x 2048 frame). Medians are order
statistics, so the result is the same bytes whichever values they are selected from: the two
middle values added in the image's dtype, then halved, as `stats.nanmedian` does; NaN where
a column's block has no usable pixel.

`neighbour_medians` replaces ``scipy.ndimage.median_filter`` over a row with the centre left
out (about 15 ms on a 32 x 2048 grid, most of it the filter's generic machinery).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["block_medians", "neighbour_medians"]


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
def _middle(col: np.ndarray, n: int, k: int, even: bool) -> tuple[float, float]:
    """The ``(k-1)``-th (``even``; else the k-th again) and the k-th smallest of ``col[:n]``."""
    _select(col, n, k)
    hi = col[k]
    lo = hi
    if even:  # the (k-1)-th smallest: the largest left of the k-th
        lo = col[0]
        for i in range(1, k):
            if col[i] > lo:
                lo = col[i]
    return lo, hi


@numba.njit(cache=True, nogil=True)
def _bracketed(
    col: np.ndarray, n: int, k: int, low: float, high: float, inside: np.ndarray
) -> tuple[int, float, float]:
    """`_middle` of ``col[:n]`` found among its values in ``[low, high]`` alone (copied into
    ``inside``): ``(how many, lo, hi)``, or ``(-1, ...)`` when the middle ones are not there."""
    below = 0
    m = 0
    for i in range(n):  # branch-free: count those below, keep those inside
        x = col[i]
        below += x < low
        inside[m] = x
        m += (x >= low) & (x <= high)
    even = n % 2 == 0
    first = k - 1 if even else k
    if below > first or below + m <= k:
        return -1, col[0], col[0]
    lo, hi = _middle(inside, m, k - below, even)
    return m, lo, hi


@numba.njit(cache=True, nogil=True)
def _gather(image: np.ndarray, usable: np.ndarray, r0: int, buf: np.ndarray, n: np.ndarray) -> None:
    """Rows ``r0 ..`` of each column, usable and non-NaN only, to the front of its row of
    ``buf`` (the block transposed: each column's values contiguous); ``n`` their counts."""
    n[:] = 0
    for r in range(r0, r0 + buf.shape[1]):
        for j in range(buf.shape[0]):
            x = image[r, j]
            buf[j, n[j]] = x  # branch-free: kept only if counted
            n[j] += usable[r, j] & (x == x)


@numba.njit(cache=True, nogil=True)
def _medians(image: np.ndarray, usable: np.ndarray, half: np.ndarray, out: np.ndarray) -> None:
    nb, nx = out.shape
    block = image.shape[0] // nb
    buf = np.empty((nx, block), image.dtype)
    inside = np.empty(block, image.dtype)
    counts = np.empty(nx, np.int64)
    h = half[0]  # 0.5 in the image's dtype: the sum and halving stay in it
    width = 1.0
    for b in range(nb):
        _gather(image, usable, b * block, buf, counts)
        guess = np.nan
        for j in range(nx):
            n = counts[j]
            if n == 0:
                out[b, j] = np.nan
                continue
            k = n // 2
            m = -1
            # The column before's median +- width likely holds the middle values: one pass
            # and a select among a few dozen instead of among all. The width follows the
            # counts found; bounded so that runs of tied or unusable columns cannot stall it.
            if n >= 16 and guess == guess:
                m, lo, hi = _bracketed(buf[j], n, k, guess - width, guess + width, inside)
                width *= 2.0 if m < 8 else 0.5 if m > 48 else 1.0
                width = min(max(width, 2.0**-20), 2.0**100)
            if m < 0:
                lo, hi = _middle(buf[j], n, k, n % 2 == 0)
            guess = hi
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


@numba.njit(cache=True, nogil=True)
def _neighbours(values: np.ndarray, half: int, out: np.ndarray) -> None:
    nb, nx = values.shape
    buf = np.empty(2 * half, values.dtype)
    for b in range(nb):
        for j in range(nx):
            n = 0
            for d in range(-half, half + 1):
                if d != 0:
                    x = values[b, min(max(j + d, 0), nx - 1)]  # mode "nearest"
                    i = n
                    while i > 0 and buf[i - 1] > x:  # insertion sort of a dozen values
                        buf[i] = buf[i - 1]
                        i -= 1
                    buf[i] = x
                    n += 1
            out[b, j] = buf[half]


def neighbour_medians(values: np.ndarray, half: int) -> np.ndarray:
    """``(nb, nx)``: for each element, the median of the ``half`` values each side of it along
    the row, itself left out, edges repeated; of the ``2 * half`` values the upper middle one.

    The same bytes as ``scipy.ndimage.median_filter`` with that footprint and
    ``mode="nearest"`` (rank ``2 * half // 2``) for NaN-free ``values``; selecting an order
    statistic, the two only could differ in which of two equal values (``0.0`` and ``-0.0``)
    they return.
    """
    out = np.empty_like(values)
    _neighbours(np.ascontiguousarray(values), half, out)
    return out
