"""Pixel-wise combination of a stack of images with outlier rejection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["clipped_mean", "normalize_by_median", "stack_median"]


def _check(images: Sequence[np.ndarray], variances: Sequence[np.ndarray]) -> tuple[int, int]:
    if not images:
        raise ValueError("nothing to combine: no input images")
    if len(images) != len(variances):
        raise ValueError(f"{len(images)} images but {len(variances)} variance planes")
    shapes = {im.shape for im in images} | {v.shape for v in variances}
    if len(shapes) != 1:
        raise ValueError(f"images to combine differ in shape: {sorted(shapes)}")
    ny, nx = images[0].shape
    return int(ny), int(nx)


#: Up to this many inputs the per-pixel median uses a compare-exchange network (vectorised
#: over pixels), much faster than ``np.median`` along a short axis.
_NETWORK_MAX = 16


def stack_median(stack: np.ndarray) -> np.ndarray:
    """Median along axis 0 of ``(n, ...)``; for small ``n`` by an odd-even sorting network.

    The mean of the two middle values for even ``n``, as ``np.median``.
    """
    n = stack.shape[0]
    if n > _NETWORK_MAX:
        return np.asarray(np.median(stack, axis=0))
    rows = [stack[i].copy() for i in range(n)]
    # Odd-even transposition sort: n rounds of compare-exchange between neighbours.
    for round_ in range(n):
        for i in range(round_ % 2, n - 1, 2):
            low = np.minimum(rows[i], rows[i + 1])
            np.maximum(rows[i], rows[i + 1], out=rows[i + 1])
            rows[i] = low
    middle = n // 2
    return rows[middle] if n % 2 else 0.5 * (rows[middle - 1] + rows[middle])


def clipped_mean(
    images: Sequence[np.ndarray],
    variances: Sequence[np.ndarray],
    nsigma: float = 4.0,
    chunk_rows: int = 128,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of a stack, per pixel, rejecting values far from the stack median.

    A value is rejected when it lies more than ``nsigma`` times its own expected noise
    (``sqrt(variance)``) from the pixel's median over the stack; the noise comes from each
    input's variance plane rather than from the scatter of a few values, so rejection works
    for stacks as small as three. A pixel where every value would be rejected keeps them all.

    Parameters
    ----------
    images, variances : sequence of numpy.ndarray
        ``n`` arrays of ``(ny, nx)``, same units (variance in units squared).
    nsigma : float
        Rejection threshold.
    chunk_rows : int
        Rows processed at a time (bounds memory to ``n x chunk_rows x nx``).

    Returns
    -------
    mean : numpy.ndarray
        ``(ny, nx)`` float32.
    variance : numpy.ndarray
        ``(ny, nx)`` float32, variance of the mean: ``sum(var_kept) / n_kept**2``.
    n_used : numpy.ndarray
        ``(ny, nx)`` int16, number of values kept.
    """
    ny, nx = _check(images, variances)
    mean = np.empty((ny, nx), np.float32)
    var = np.empty((ny, nx), np.float32)
    used = np.empty((ny, nx), np.int16)
    for y0 in range(0, ny, chunk_rows):
        rows = slice(y0, min(y0 + chunk_rows, ny))
        stack = np.stack([im[rows] for im in images]).astype(np.float32, copy=False)
        vstack = np.stack([v[rows] for v in variances]).astype(np.float32, copy=False)
        deviation = stack - stack_median(stack)
        deviation *= deviation  # squares: no abs, no sqrt of the variances
        keep = deviation <= np.float32(nsigma * nsigma) * vstack
        keep |= ~keep.any(axis=0)
        count = np.count_nonzero(keep, axis=0).astype(np.float32)
        mean[rows] = (stack * keep).sum(axis=0) / count
        var[rows] = (vstack * keep).sum(axis=0) / (count * count)
        used[rows] = count
    return mean, var, used


def normalize_by_median(
    image: np.ndarray, variance: np.ndarray, good: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """``image / m`` and ``variance / m**2`` with ``m`` the median of ``image[good]``.

    Parameters
    ----------
    image, variance : numpy.ndarray
        ``(ny, nx)``.
    good : numpy.ndarray, optional
        ``(ny, nx)`` bool, pixels the median is taken over (default: all finite).

    Returns
    -------
    image, variance : numpy.ndarray
        New ``(ny, nx)`` float32 arrays.
    median : float
        The median divided out.

    Raises
    ------
    ValueError
        If the median is not positive (an exposure without light cannot be a flat).
    """
    values = image[good] if good is not None else image[np.isfinite(image)]
    median = float(np.median(values)) if values.size else float("nan")
    if not median > 0:
        raise ValueError(f"median level {median} is not positive")
    scale = np.float32(1.0 / median)
    return image * scale, variance * (scale * scale), median
