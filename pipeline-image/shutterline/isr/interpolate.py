"""Interpolation over masked pixels (bad columns, cosmic rays) from their good neighbours."""

from __future__ import annotations

import numpy as np

__all__ = ["interpolate_pixels"]

# Half-widths of the square windows tried in turn: a pixel whose 5 x 5 neighbourhood is all
# masked (inside a wide bad column block) takes the median of a larger one.
_RADII = (2, 5, 12)


def _window_median(
    image: np.ndarray, mask: np.ndarray, bits: int, ys: np.ndarray, xs: np.ndarray, radius: int
) -> np.ndarray:
    ny, nx = image.shape
    offsets = np.arange(-radius, radius + 1)
    yy = np.clip(ys[:, None, None] + offsets[None, :, None], 0, ny - 1)
    xx = np.clip(xs[:, None, None] + offsets[None, None, :], 0, nx - 1)
    flat = (yy * nx + xx).reshape(len(ys), -1)  # (n, (2r+1)**2) window pixels
    values = image.ravel()[flat].astype(np.float32)
    excluded = (mask.ravel()[flat] & bits) != 0
    # A median over the good values of each row without nanmedian's cost: excluded values
    # sort to the end as +inf, and the middle of the first `count` values is the median.
    values[excluded] = np.inf
    values.sort(axis=1)
    count = values.shape[1] - excluded.sum(axis=1)
    rows = np.arange(len(ys))
    lo = values[rows, np.maximum((count - 1) // 2, 0)]
    hi = values[rows, np.maximum(count // 2, 0)]
    with np.errstate(invalid="ignore"):
        median = np.where(count > 0, 0.5 * (lo + hi), np.nan)
    return median.astype(np.float32)


def interpolate_pixels(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    bits: int,
    ys: np.ndarray,
    xs: np.ndarray,
) -> None:
    """Replace ``image[ys, xs]`` in place by the median of nearby pixels not in ``bad``.

    Parameters
    ----------
    image, variance : numpy.ndarray
        ``(ny, nx)`` float32, modified in place. The interpolated pixel's variance becomes the
        median variance of its window (an honest noise level, not the noise of a median).
    mask : numpy.ndarray
        ``(ny, nx)`` int32 mask plane; pixels with any of ``bits`` set never serve as
        neighbours (the pixels to replace must carry one of them).
    bits : int
        `MaskBit` bits that disqualify a neighbour.
    ys, xs : numpy.ndarray
        ``(n,)`` int row and column indices of the pixels to replace.
    """
    todo = np.arange(len(ys))
    for radius in _RADII:
        if len(todo) == 0:
            return
        values = _window_median(image, mask, bits, ys[todo], xs[todo], radius)
        noise = _window_median(variance, mask, bits, ys[todo], xs[todo], radius)
        done = ~np.isnan(values)
        image[ys[todo[done]], xs[todo[done]]] = values[done]
        variance[ys[todo[done]], xs[todo[done]]] = noise[done]
        todo = todo[~done]
    if len(todo):
        # Nothing good within the largest window: fall back to a sample of the whole image.
        image[ys[todo], xs[todo]] = np.median(image[::16, ::16])
        variance[ys[todo], xs[todo]] = np.median(variance[::16, ::16])
