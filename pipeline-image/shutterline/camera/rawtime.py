"""The exposure start of a raw, read in the header's time system and returned in TAI.

DECam writes ``TIMESYS = 'UTC'`` with ``MJD-OBS`` and ``DATE-OBS`` in UTC; every time inside
the project is TAI (docs/architecture.md). This is the one place a header time is converted,
used by ingest (the exposure's timespan) and by instrument signature removal (``MJD``). A
header without ``TIMESYS`` is UTC, the FITS standard's default.
"""

from __future__ import annotations

from astropy import time as astrotime
from astropy.io import fits

__all__ = ["SCALES", "HeaderTimeError", "start_tai"]

#: ``TIMESYS`` values understood, and astropy's name for each.
SCALES = {"UTC": "utc", "TAI": "tai", "TT": "tt"}
#: ``DATE-OBS`` and ``MJD-OBS`` must name the same instant to this tolerance (seconds).
_AGREE_S = 1.0


class HeaderTimeError(ValueError):
    """A header time that cannot be read; ``keyword`` names the keyword at fault."""

    def __init__(self, keyword: str, message: str) -> None:
        super().__init__(message)
        self.keyword = keyword


def start_tai(primary: fits.Header) -> float:
    """``MJD-OBS`` converted from the header's ``TIMESYS`` to TAI (MJD).

    Raises
    ------
    HeaderTimeError
        ``MJD-OBS`` is missing or not a number, ``TIMESYS`` is not one of `SCALES`, or
        ``DATE-OBS`` is unreadable or disagrees with ``MJD-OBS`` (``keyword`` says which).
    """
    system = str(primary.get("TIMESYS", "UTC")).strip().upper()
    scale = SCALES.get(system)
    if scale is None:
        raise HeaderTimeError("TIMESYS", f"is {system!r}, not one of {sorted(SCALES)}")
    try:
        start = astrotime.Time(float(primary["MJD-OBS"]), format="mjd", scale=scale)
    except (KeyError, TypeError, ValueError) as exc:
        raise HeaderTimeError("MJD-OBS", f"is missing or not a number ({exc})") from exc
    if "DATE-OBS" in primary:
        try:
            iso = astrotime.Time(str(primary["DATE-OBS"]).strip(), format="isot", scale=scale)
        except ValueError as exc:
            raise HeaderTimeError("DATE-OBS", f"is not an ISO time ({exc})") from exc
        if abs((iso - start).sec) > _AGREE_S:
            raise HeaderTimeError(
                "DATE-OBS",
                f"{iso.isot} and MJD-OBS {start.isot} differ by "
                f"{abs((iso - start).sec):.1f} s (both {system})",
            )
    return float(start.tai.mjd)
