"""Vectorised square cut-outs around many positions at once (no loop over sources)."""

from __future__ import annotations

import numpy as np

__all__ = ["cutouts", "fourier_shift", "nearest_pixel"]


def nearest_pixel(coord: np.ndarray) -> np.ndarray:
    """``(n,)`` int64 index of the pixel whose centre is nearest to each coordinate."""
    return np.floor(np.asarray(coord, np.float64) + 0.5).astype(np.int64)


def cutouts(
    array: np.ndarray, xi: np.ndarray, yi: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray]:
    """Square ``(2 half + 1)`` cut-outs of ``array`` centred on integer pixels.

    Parameters
    ----------
    array : numpy.ndarray
        ``(ny, nx)`` plane (image, variance, mask, ...).
    xi, yi : numpy.ndarray
        ``(n,)`` integer centres, ``x`` along axis 1, ``y`` along axis 0.
    half : int
        Half size; cut-outs are ``(n, 2 half + 1, 2 half + 1)``.

    Returns
    -------
    values : numpy.ndarray
        ``(n, k, k)`` values, edge-clamped where the cut-out leaves the array.
    inside : numpy.ndarray
        ``(n, k, k)`` bool, False where the cut-out leaves the array.
    """
    ny, nx = array.shape
    offsets = np.arange(-half, half + 1)
    # Rows and columns are clipped as (n, k) vectors; only the gather itself is (n, k, k).
    rows = np.asarray(yi, np.int64)[:, None] + offsets[None, :]
    cols = np.asarray(xi, np.int64)[:, None] + offsets[None, :]
    row_ok = (rows >= 0) & (rows < ny)
    col_ok = (cols >= 0) & (cols < nx)
    rows, cols = np.clip(rows, 0, ny - 1), np.clip(cols, 0, nx - 1)
    values = array[rows[:, :, None], cols[:, None, :]]
    return values, row_ok[:, :, None] & col_ok[:, None, :]


def fourier_shift(stack: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Shift each ``(k, k)`` image of ``stack`` by ``(dy, dx)`` pixels (sinc interpolation).

    One batched FFT instead of a spline fit per image: exact for band-limited images, and a
    well-sampled PSF is one; content leaving one side re-enters on the other, so callers crop
    a margin. The shifts broadcast against the stack, so images shifted many ways (a PSF
    model's terms at every sub-pixel phase) are transformed once each.

    Parameters
    ----------
    stack : numpy.ndarray
        ``(..., k, k)`` images, odd ``k``.
    dy, dx : numpy.ndarray
        Shifts in pixels, broadcastable against ``stack.shape[:-2]``; positive moves content
        to larger indices.

    Returns
    -------
    numpy.ndarray
        ``(..., k, k)`` float64 shifted images, of the broadcast leading shape.
    """
    k = stack.shape[-1]
    fy = np.fft.fftfreq(k)[:, None]
    fx = np.fft.rfftfreq(k)[None, :]
    dy = np.asarray(dy, np.float64)[..., None, None]
    dx = np.asarray(dx, np.float64)[..., None, None]
    ramp = np.exp(-2j * np.pi * (fy * dy + fx * dx))
    return np.fft.irfft2(np.fft.rfft2(stack, axes=(-2, -1)) * ramp, s=(k, k), axes=(-2, -1))
