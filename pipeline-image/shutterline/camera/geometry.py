"""FITS section strings and their conversion to 0-based numpy slices."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Section", "parse_section"]

_SECTION = re.compile(r"^\s*\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]\s*$")


@dataclass(frozen=True)
class Section:
    """A rectangle of pixels, 0-based and half-open, as numpy indexes it.

    ``x0:x1`` are columns, ``y0:y1`` rows. A FITS section ``[x1:x2,y1:y2]`` is 1-based and
    inclusive; ``parse_section`` converts it. Reversed FITS ranges (readout direction) are
    normalised: the slice always runs low to high.
    """

    x0: int
    x1: int
    y0: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices for ``array[section.slices]``."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return self.y1 - self.y0, self.x1 - self.x0

    def to_fits(self) -> str:
        """The 1-based inclusive FITS string of this section."""
        return f"[{self.x0 + 1}:{self.x1},{self.y0 + 1}:{self.y1}]"


def parse_section(text: str) -> Section:
    """Parse a FITS section string such as ``'[51:1074,1:4096]'``.

    Raises
    ------
    ValueError
        If ``text`` is not a section string.
    """
    match = _SECTION.match(str(text))
    if match is None:
        raise ValueError(f"not a FITS section string: {text!r}")
    xa, xb, ya, yb = (int(g) for g in match.groups())
    if min(xa, xb, ya, yb) < 1:
        raise ValueError(f"FITS sections are 1-based: {text!r}")
    return Section(min(xa, xb) - 1, max(xa, xb), min(ya, yb) - 1, max(ya, yb))
