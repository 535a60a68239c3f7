"""The SimDECam instrument's static dimension records (instrument, detectors, filters).

Records of observations (exposure, visit, regions) are built from raw headers in
`shutterline.butler.rawheaders`; the sky map's records in `shutterline.butler.skymaps`.
"""

from __future__ import annotations

from lsst.daf.butler import Butler

from shutterline.butler import names
from shutterline.camera import filters, layout

__all__ = [
    "EXPOSURE_MAX",
    "NO_FILTER",
    "VISIT_SYSTEM_ID",
    "register_instrument",
]

#: Exclusive upper bound of exposure and visit ids (``EXPNUM`` is a 32-bit counter).
EXPOSURE_MAX = 2**31
#: Physical filter of exposures taken with no filter in the beam (biases).
NO_FILTER = filters.NO_FILTER
#: The one visit system: each science exposure is its own visit.
VISIT_SYSTEM_ID = 0
_VISIT_SYSTEM_NAME = "one-to-one"


def register_instrument(butler: Butler, camera: layout.Camera = layout.CAMERA) -> None:
    """Insert the instrument, its detectors, physical filters and visit system.

    Idempotent: records that exist already are left alone.
    """
    registry = butler.registry
    detector_max = max(spec.ccdnum for spec in camera.detectors) + 1
    registry.insertDimensionData(
        "instrument",
        {
            "name": names.INSTRUMENT,
            "visit_max": EXPOSURE_MAX,
            "exposure_max": EXPOSURE_MAX,
            "detector_max": detector_max,
            "visit_system": VISIT_SYSTEM_ID,
            "class_name": "shutterline.butler.instrument",
        },
        skip_existing=True,
    )
    registry.insertDimensionData(
        "detector",
        *[
            {
                "instrument": names.INSTRUMENT,
                "id": spec.ccdnum,
                "full_name": spec.detpos,
                "name_in_raft": spec.detpos,
                "raft": spec.detpos[0],
                "purpose": "SCIENCE",
            }
            for spec in camera.detectors
        ],
        skip_existing=True,
    )
    registry.insertDimensionData(
        "physical_filter",
        *[
            {"instrument": names.INSTRUMENT, "name": band, "band": band}
            for band in (*names.BANDS, NO_FILTER)
        ],
        skip_existing=True,
    )
    registry.insertDimensionData(
        "visit_system",
        {"instrument": names.INSTRUMENT, "id": VISIT_SYSTEM_ID, "name": _VISIT_SYSTEM_NAME},
        skip_existing=True,
    )
