"""Saturation: grow the ``SAT`` mask around saturated cores and along their bleed trails."""

from __future__ import annotations

import numpy as np

from shutterline.images import mask as mask_mod

__all__ = ["grow_saturation"]


def _grow_axis(flat: np.ndarray, shape: tuple[int, int], grow: int, axis: int) -> np.ndarray:
    if grow <= 0 or len(flat) == 0:
        return flat
    ys, xs = np.divmod(flat, shape[1])
    offsets = np.arange(-grow, grow + 1)
    if axis == 0:
        ys = (ys[:, None] + offsets).ravel()
        xs = np.repeat(xs, len(offsets))
    else:
        xs = (xs[:, None] + offsets).ravel()
        ys = np.repeat(ys, len(offsets))
    inside = (ys >= 0) & (ys < shape[0]) & (xs >= 0) & (xs < shape[1])
    return np.unique(ys[inside] * shape[1] + xs[inside])


def grow_saturation(mask: np.ndarray, seeds: np.ndarray, grow_x: int = 1, grow_y: int = 3) -> int:
    """Grow ``SAT`` in place from ``seeds``: ``grow_x`` pixels across columns, ``grow_y`` along.

    Charge bleeds along columns (the readout direction), and the pixels at the ends of a trail
    hold spilled charge just below the saturation level, so the growth is longer in y. The work
    is proportional to the number of saturated pixels, not to the image size.

    Parameters
    ----------
    mask : numpy.ndarray
        ``(ny, nx)`` int32 mask plane, modified in place.
    seeds : numpy.ndarray
        Flat indices into ``mask`` of the saturated pixels.

    Returns
    -------
    int
        The number of pixels flagged ``SAT`` by the seeds and their growth.
    """
    shape = (int(mask.shape[0]), int(mask.shape[1]))
    grown = _grow_axis(_grow_axis(np.asarray(seeds), shape, grow_x, 1), shape, grow_y, 0)
    mask.ravel()[grown] |= int(mask_mod.MaskBit.SAT)
    return len(grown)
