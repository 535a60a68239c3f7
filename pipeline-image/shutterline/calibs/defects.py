"""Defects: bad columns and pixels found in master bias and master flat.

Columns are judged in segments of ``segment_rows`` rows, so a column that goes bad part of
the way up (a charge trap) is flagged where it is bad; pixels are judged one by one. Both
compare with a smooth local reference, so the flat-field pattern itself is never a defect.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage

__all__ = ["bias_defects", "flat_defects"]


def _robust_sigma(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def _segment_medians(image: np.ndarray, segment_rows: int, step: int = 2) -> np.ndarray:
    # Every `step`-th row of a segment is plenty for a column's median level.
    ny = image.shape[0]
    edges = np.linspace(0, ny, max(ny // segment_rows, 1) + 1).astype(int)
    return np.stack([np.median(image[a:b:step], axis=0) for a, b in itertools.pairwise(edges)])


def _local_level(image: np.ndarray, mesh: int) -> np.ndarray:
    # Block medians expanded back to full size: the smooth level a pixel is judged against.
    ny, nx = image.shape
    by, bx = min(mesh, ny), min(mesh, nx)
    gy, gx = ny // by, nx // bx
    blocks = image[: gy * by, : gx * bx].reshape(gy, by, gx, bx).transpose(0, 2, 1, 3)
    # A quarter of each block's pixels measures its level well enough.
    level = np.median(blocks[:, :, ::2, ::2].reshape(gy, gx, -1), axis=2)
    jy = np.minimum(np.arange(ny) // by, gy - 1)
    jx = np.minimum(np.arange(nx) // bx, gx - 1)
    return level[jy][:, jx].astype(np.float32)


def _column_outliers(
    image: np.ndarray, threshold: np.ndarray | float, segment_rows: int, width: int = 15
) -> np.ndarray:
    # Column medians per segment, compared with a running median across neighbouring columns.
    seg = _segment_medians(image, segment_rows)
    reference = ndimage.median_filter(seg, size=(1, width), mode="nearest")
    bad_seg = np.abs(seg - reference) > threshold
    ny = image.shape[0]
    edges = np.linspace(0, ny, seg.shape[0] + 1).astype(int)
    return np.repeat(bad_seg, np.diff(edges), axis=0)


def bias_defects(
    bias: np.ndarray, nsigma: float = 8.0, segment_rows: int = 256, mesh: int = 64
) -> np.ndarray:
    """Hot or cold columns and pixels of a master bias.

    Parameters
    ----------
    bias : numpy.ndarray
        ``(ny, nx)`` master bias, electrons.
    nsigma : float
        Threshold in robust sigmas of the master bias (pixels) and of the column medians.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` bool, True on defects.
    """
    seg = _segment_medians(bias, segment_rows)
    col_sigma = _robust_sigma(seg - ndimage.median_filter(seg, size=(1, 15), mode="nearest"))
    bad = _column_outliers(bias, nsigma * max(col_sigma, 1e-3), segment_rows)
    residual = bias - _local_level(bias, mesh)
    sigma = _robust_sigma(residual[::2, ::2])
    bad |= np.abs(residual) > nsigma * max(sigma, 1e-3)
    return bad


def flat_defects(
    flat: np.ndarray,
    column_tolerance: float = 0.05,
    pixel_tolerance: float = 0.25,
    segment_rows: int = 256,
    mesh: int = 64,
) -> np.ndarray:
    """Dead or hot columns and pixels of a master flat (median 1).

    A column segment whose median departs from its neighbours' by more than
    ``column_tolerance`` (fractional response) is bad; so is a pixel departing from the local
    flat level (block medians over ``mesh`` pixels) by more than ``pixel_tolerance``, and any
    pixel with a non-positive or non-finite value.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` bool, True on defects.
    """
    bad = ~(np.isfinite(flat) & (flat > 0))
    clean = np.where(bad, np.float32(1.0), flat)
    bad |= _column_outliers(clean, column_tolerance, segment_rows)
    bad |= np.abs(clean / _local_level(clean, mesh) - 1.0) > pixel_tolerance
    return bad
