"""The raw file format: required header keywords, in one place for writer and readers."""

from __future__ import annotations

__all__ = [
    "AMPLIFIERS",
    "DETECTOR_KEYS",
    "OBSTYPE_BIAS",
    "OBSTYPE_FLAT",
    "OBSTYPE_SCIENCE",
    "PRIMARY_KEYS",
    "amp_key",
]

#: Keywords every raw's primary header carries.
PRIMARY_KEYS = (
    "EXPNUM",
    "MJD-OBS",
    "DATE-OBS",
    "EXPTIME",
    "FILTER",
    "OBSTYPE",
    "TELRA",
    "TELDEC",
    "AIRMASS",
)
#: Per-amplifier keyword stems; the amplifier letter is appended (``GAINA``).
_AMP_STEMS = ("DATASEC", "BIASSEC", "GAIN", "RDNOISE", "SATURAT")
AMPLIFIERS = ("A", "B")
#: Keywords every raw's image extension carries (plus a TAN WCS).
DETECTOR_KEYS = ("CCDNUM", "DETPOS", *(f"{s}{a}" for a in AMPLIFIERS for s in _AMP_STEMS))

OBSTYPE_BIAS = "zero"
OBSTYPE_FLAT = "dome flat"
OBSTYPE_SCIENCE = "object"


def amp_key(stem: str, amp: str) -> str:
    """The keyword for one amplifier: ``amp_key('GAIN', 'A') == 'GAINA'``."""
    return f"{stem}{amp}"
