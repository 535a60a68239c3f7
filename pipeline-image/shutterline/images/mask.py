"""Mask bit planes, one bit per condition, stored in an int32 plane."""

from __future__ import annotations

import enum

__all__ = ["MaskBit"]


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
