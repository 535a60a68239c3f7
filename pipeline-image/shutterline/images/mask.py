"""Mask bit planes, one bit per condition, stored in an int32 plane."""

from __future__ import annotations

import enum

import numpy as np
from scipy import ndimage

__all__ = ["MaskBit", "dilate_square"]


class MaskBit(enum.IntFlag):
    """Bits of ``Exposure.mask``. The FITS header of the mask plane names each one."""

    BAD = 1 << 0  # known bad pixel or column
    SAT = 1 << 1  # saturated, or in a bleed trail
    CR = 1 << 2  # cosmic ray
    EDGE = 1 << 3  # too close to the edge for a full PSF or kernel
    NO_DATA = 1 << 4  # no input pixel (outside a warped image, a coadd with no coverage)
    DETECTED = 1 << 5  # inside a positive detection footprint
    DETECTED_NEGATIVE = 1 << 6  # inside a negative detection footprint
    INTRP = 1 << 7  # value interpolated over
    SUSPECT = 1 << 8  # near saturation or otherwise doubtful
    STREAK = 1 << 9  # on a satellite streak found in the difference image


def dilate_square(plane: np.ndarray, size: int) -> np.ndarray:
    """``ndimage.binary_dilation(plane, np.ones((size, size), bool))``, the same bits, as two
    1-D maximum filters (a square is the sum of two segments): 4 x faster for 21 x 21 on a
    1050 x 1050 plane (measured). ``size`` odd; outside the plane counts as False.
    """
    if size % 2 == 0:
        raise ValueError(f"dilate_square needs an odd size, not {size}")
    grown = ndimage.maximum_filter1d(plane.view(np.uint8), size, axis=0, mode="constant")
    return ndimage.maximum_filter1d(grown, size, axis=1, mode="constant").view(bool)
