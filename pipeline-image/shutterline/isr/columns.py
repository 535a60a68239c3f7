"""Columns that misbehave in the science frame itself: defects no calibration has seen.

A column that went dead or hot after the master bias and flat were made is not in their
defect masks. It shows in the frame: the median of the column over a block of rows departs
from its neighbours' medians far beyond what the sky noise allows (a median over ``block``
rows shrugs off the stars, which cover a few rows each). Such blocks, from the first one to
the last, are flagged ``BAD`` on that column; the caller interpolates them like the
calibrations' defects.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import ndimage

from shutterline.images import mask as mask_mod
from shutterline.images import stats
from shutterline.isr import _blockmedian

__all__ = ["ColumnConfig", "misbehaving_columns"]

_SKIP = int(mask_mod.MaskBit.BAD | mask_mod.MaskBit.SAT | mask_mod.MaskBit.CR)


@dataclasses.dataclass(frozen=True)
class ColumnConfig:
    """``block`` rows per median; neighbours ``half_width`` columns each side; threshold
    ``nsigma`` of the median's noise, and at least ``min_fraction`` of the neighbours' level
    (so a column a few percent off, a flat-field residual, is left alone)."""

    block: int = 128
    half_width: int = 6
    nsigma: float = 8.0
    min_fraction: float = 0.1


def _block_medians(image: np.ndarray, usable: np.ndarray, block: int) -> np.ndarray:
    """``(nb, nx)`` median of each column over each block of rows, usable pixels only (NaN
    where a block has none): compiled selection, the same bytes as the reference below."""
    return _blockmedian.block_medians(image, usable, block)


def _block_medians_reference(image: np.ndarray, usable: np.ndarray, block: int) -> np.ndarray:
    """The NumPy original of `_block_medians` (a full sort, see `stats.nanmedian`), kept as the
    reference its tests compare against."""
    ny, nx = image.shape
    nb = max(ny // block, 1)
    rows = nb * block if ny >= block else ny
    values = np.where(usable[:rows], image[:rows], np.float32(np.nan)).reshape(nb, -1, nx)
    return stats.nanmedian(values.transpose(0, 2, 1), axis=-1).astype(np.float64)


def _neighbour_medians_reference(values: np.ndarray, half: int) -> np.ndarray:
    """The SciPy original of `_blockmedian.neighbour_medians`, kept as its tests' reference."""
    footprint = np.ones((1, 2 * half + 1), bool)
    footprint[0, half] = False
    return ndimage.median_filter(values, footprint=footprint, mode="nearest")


def misbehaving_columns(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray,
    config: ColumnConfig | None = None,
) -> list[tuple[int, int, int]]:
    """``(column, first row, last row + 1)`` of every misbehaving column segment.

    Parameters
    ----------
    image, variance : numpy.ndarray
        ``(ny, nx)`` after bias and flat (electrons; sky not subtracted).
    mask : numpy.ndarray
        ``(ny, nx)``; pixels already ``BAD``, ``SAT`` or ``CR`` are ignored.
    """
    config = config or ColumnConfig()
    ny, nx = image.shape
    if nx < 2 * config.half_width + 3 or ny < 8:
        return []
    usable = (mask & _SKIP) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-masked blocks give NaN
        med = _block_medians(image, usable, config.block)
        level = np.nanmedian(med)
        # Neighbours' median, the column itself excluded (a median over the window minus it).
        filled = np.where(np.isfinite(med), med, level)
        ref = _blockmedian.neighbour_medians(filled, config.half_width)
    rows = ny // max(ny // config.block, 1) if ny >= config.block else ny
    # The sky variance is smooth: every fourth row and column gives its median (0.05 s less).
    sub = (slice(None, None, 4), slice(None, None, 4))
    noise = 1.2533 * np.sqrt(float(np.median(variance[sub][usable[sub]])) / rows)
    off = np.abs(med - ref)
    bad = np.isfinite(med) & (off > config.nsigma * noise)
    bad &= off > config.min_fraction * np.abs(level)
    out = []
    for col in np.flatnonzero(bad.any(axis=0)):
        blocks = np.flatnonzero(bad[:, col])
        # The defect may start inside the block before the first flagged one: take it too.
        first = max(int(blocks[0]) - 1, 0) * rows
        last = min((int(blocks[-1]) + 1) * rows, ny)
        if blocks[-1] == bad.shape[0] - 1:
            last = ny  # the rows below a whole block belong with the last one
        out.append((int(col), first, last))
    return out
