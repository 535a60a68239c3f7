"""The raw file format: required header keywords, in one place for writer and readers."""

from __future__ import annotations

__all__ = [
    "AMPLIFIERS",
    "DETECTOR_KEYS",
    "OBSTYPE_BIAS",
    "OBSTYPE_FLAT",
    "OBSTYPE_SCIENCE",
    "PRIMARY_KEYS",
    "WCS_KEYS",
    "amp_key",
    "needs_wcs",
    "required_primary_keys",
]

#: Keywords a science raw's primary header carries (what the simulator writes for every raw).
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
#: What a calibration raw may lack: a bias sees no filter and no sky, a dome flat no sky.
_NOT_NEEDED = {
    "zero": ("FILTER", "TELRA", "TELDEC", "AIRMASS"),
    "dome flat": ("TELRA", "TELDEC", "AIRMASS"),
    "object": (),
}
#: The TAN WCS keywords of the image extension; only a science raw needs them.
WCS_KEYS = ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD2_2")
#: Per-amplifier keyword stems; the amplifier letter is appended (``GAINA``).
_AMP_STEMS = ("DATASEC", "BIASSEC", "GAIN", "RDNOISE", "SATURAT")
AMPLIFIERS = ("A", "B")
#: Keywords every raw's image extension carries (plus, for a science raw, a TAN WCS).
DETECTOR_KEYS = ("CCDNUM", "DETPOS", *(f"{s}{a}" for a in AMPLIFIERS for s in _AMP_STEMS))

OBSTYPE_BIAS = "zero"
OBSTYPE_FLAT = "dome flat"
OBSTYPE_SCIENCE = "object"


def required_primary_keys(obstype: str) -> tuple[str, ...]:
    """The primary keywords a raw of this ``OBSTYPE`` must carry (all of them if unknown)."""
    skip = _NOT_NEEDED.get(obstype, ())
    return tuple(k for k in PRIMARY_KEYS if k not in skip)


def needs_wcs(obstype: str) -> bool:
    """Whether a raw of this ``OBSTYPE`` must carry a WCS (only exposures of the sky)."""
    return obstype == OBSTYPE_SCIENCE


def amp_key(stem: str, amp: str) -> str:
    """The keyword for one amplifier: ``amp_key('GAIN', 'A') == 'GAINA'``."""
    return f"{stem}{amp}"
