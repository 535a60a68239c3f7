"""The camera's filters: the header's ``FILTER`` text (DECam's physical filter) to band.

DECam writes the full filter name in ``FILTER`` (``'r DECam SDSS c0002 6415.0 1480.0'``);
everything downstream of the raw (the Butler's ``physical_filter`` dimension, ISR metadata
``BAND``, master flats, templates, alerts, diaObject ``<band>_*`` fields) uses the band. This
module is the one place that maps one to the other; the simulator writes the same strings.
"""

from __future__ import annotations

__all__ = ["BANDS", "NO_FILTER", "PHYSICAL_FILTERS", "band_of", "physical_filter_of"]

#: The bands this instrument has flats, templates and reference fluxes for.
BANDS = ("g", "r", "i")
#: Band of exposures with no filter in the beam (biases, whatever their ``FILTER`` says).
NO_FILTER = "none"
#: DECam's ``FILTER`` values and their bands (DECam filter set, as its headers spell them).
PHYSICAL_FILTERS = {
    "u DECam c0006 3500.0 1000.0": "u",
    "g DECam SDSS c0001 4720.0 1520.0": "g",
    "r DECam SDSS c0002 6415.0 1480.0": "r",
    "i DECam SDSS c0003 7835.0 1470.0": "i",
    "z DECam SDSS c0004 9260.0 1520.0": "z",
    "Y DECam c0005 10095.0 1130.0": "Y",
    "VR DECam c0007 6300.0 2600.0": "VR",
}
_BY_BAND = {band: name for name, band in PHYSICAL_FILTERS.items()}


def band_of(physical_filter: object) -> str:
    """The band of a header ``FILTER`` value (runs of blanks are not significant).

    Raises
    ------
    ValueError
        Not a DECam filter, or one this instrument has no calibrations for (message names
        the accepted values).
    """
    text = " ".join(str(physical_filter).split())
    band = PHYSICAL_FILTERS.get(text)
    if band is None:
        raise ValueError(f"not a DECam filter (one of {sorted(PHYSICAL_FILTERS)})")
    if band not in BANDS:
        raise ValueError(f"is band {band!r}, not one of this instrument's bands {BANDS}")
    return band


def physical_filter_of(band: str) -> str:
    """DECam's ``FILTER`` text for a band (what the simulator writes)."""
    try:
        return _BY_BAND[band]
    except KeyError:
        raise ValueError(f"no DECam filter for band {band!r}") from None
