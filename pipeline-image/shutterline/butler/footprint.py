"""A detector's footprint on the sky before its raw exists, from the visit's announcement.

Pre-staging plans a detector from the next-visit announcement alone (boresight, rotation),
so the footprint that selects its templates and reference shards cannot come from the raw's
WCS. It comes from the camera's layout as the repository knows it: every ingested science
exposure recorded its detectors' footprints (``visit_detector_region``, from the raw WCS)
and its boresight (the centre of the visit's region). Expressed in the tangent plane of its
boresight, a detector's corners are the same on every visit at the same rotation, whatever
the detector size the night was simulated at; placing them around the announced boresight,
turned by the announced rotation, predicts the new footprint. The raw WCS is only right to
a couple of arcseconds, on the earlier visits as on this one, so callers grow the
prediction by `WCS_MARGIN_ARCSEC`.
"""

from __future__ import annotations

import numpy as np
from lsst.daf.butler import Butler
from lsst.sphgeom import LonLat

from shutterline import exceptions
from shutterline.butler import names

__all__ = [
    "WCS_MARGIN_ARCSEC",
    "detector_offsets",
    "from_tangent_plane",
    "predict_corners",
    "to_tangent_plane",
]

#: Margin for the raw WCS error (under 2" on the simulated camera) on both the earlier
#: visits that taught us the layout and the visit being predicted.
WCS_MARGIN_ARCSEC = 5.0
#: Earlier visits averaged to learn a detector's place in the focal plane.
_REFERENCE_VISITS = 5


def to_tangent_plane(
    ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic standard coordinates ``(xi, eta)`` (degrees; xi east, eta north) about
    ``(ra0, dec0)`` of sky positions (degrees)."""
    a, d = np.radians(np.asarray(ra, float) - ra0), np.radians(np.asarray(dec, float))
    d0 = np.radians(dec0)
    cos_c = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a)
    xi = np.cos(d) * np.sin(a) / cos_c
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a)) / cos_c
    return np.degrees(xi), np.degrees(eta)


def from_tangent_plane(
    xi: np.ndarray, eta: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions (degrees) of standard coordinates ``(xi, eta)`` (degrees) about
    ``(ra0, dec0)``; the inverse of `to_tangent_plane`."""
    x, y = np.radians(np.asarray(xi, float)), np.radians(np.asarray(eta, float))
    d0 = np.radians(dec0)
    denominator = np.cos(d0) - y * np.sin(d0)
    ra = ra0 + np.degrees(np.arctan2(x, denominator))
    dec = np.degrees(np.arctan2(np.sin(d0) + y * np.cos(d0), np.hypot(x, denominator)))
    return ra % 360.0, dec


def _rotate(xi: np.ndarray, eta: np.ndarray, rotation_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Turn offsets by a position angle (north through east)."""
    t = np.radians(rotation_deg)
    return xi * np.cos(t) + eta * np.sin(t), -xi * np.sin(t) + eta * np.cos(t)


def detector_offsets(butler: Butler, detector: int) -> np.ndarray:
    """Corners ``(n, 2)`` of ``detector`` in the tangent plane of the boresight (degrees,
    ``(xi, eta)``) at rotation 0, averaged over its latest ingested science visits.

    Raises
    ------
    shutterline.exceptions.MissingInputError
        The repository holds no science visit of this detector to learn its place from.
    """
    rows = butler.query_data_ids(
        ["visit", "detector"],
        data_id={"instrument": names.INSTRUMENT, "detector": int(detector)},
        with_dimension_records=True,
        order_by=["-visit"],
        limit=4 * _REFERENCE_VISITS,
        explain=False,
    )
    offsets = []
    for row in rows:
        region, visit = row.records["visit_detector_region"], row.records["visit"]
        if region is None or visit is None or visit.region is None:
            continue
        centre = LonLat(visit.region.getBoundingCircle().getCenter())
        ra0, dec0 = centre.getLon().asDegrees(), centre.getLat().asDegrees()
        corners = [LonLat(v) for v in region.region.getVertices()]
        ra = np.array([c.getLon().asDegrees() for c in corners])
        dec = np.array([c.getLat().asDegrees() for c in corners])
        offsets.append(np.column_stack(to_tangent_plane(ra, dec, ra0, dec0)))
        if len(offsets) == _REFERENCE_VISITS:
            break
    if not offsets or len({len(o) for o in offsets}) != 1:
        raise exceptions.MissingInputError(
            "visit_detector_region",
            {"instrument": names.INSTRUMENT, "detector": int(detector)},
            "no earlier science visit of this detector to place it in the focal plane",
        )
    return np.mean([_aligned(o, offsets[0]) for o in offsets], axis=0)


def _aligned(corners: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``corners`` cyclically shifted to pair best with ``reference``'s.

    A region's vertices come back counter-clockwise but from any starting vertex.
    """
    shifts = [np.roll(corners, k, axis=0) for k in range(len(corners))]
    return min(shifts, key=lambda c: float(np.sum((c - reference) ** 2)))


def predict_corners(
    butler: Butler, detector: int, ra: float, dec: float, rotation: float = 0.0
) -> np.ndarray:
    """Predicted ICRS corners ``(n, 2)`` (degrees) of ``detector`` for a boresight at
    ``(ra, dec)`` turned by ``rotation`` (degrees, north through east)."""
    offsets = detector_offsets(butler, detector)
    xi, eta = _rotate(offsets[:, 0], offsets[:, 1], rotation)
    return np.column_stack(from_tangent_plane(xi, eta, ra, dec))
