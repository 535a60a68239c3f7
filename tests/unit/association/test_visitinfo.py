"""``VisitInfo`` from an exposure: midpoint time and a footprint that contains the image."""

from __future__ import annotations

import lsst.sphgeom as sphgeom
import numpy as np
import pytest

from shutterline.association import visitinfo
from tests.unit.association import synthetic


def _exposure():
    exp = synthetic.make_exposure((400, 200), np.array([]), np.array([]), np.array([]))
    exp.metadata.update({"VISIT": 12, "DETECTOR": 4, "BAND": "g", "MJD": 60000.0, "EXPTIME": 86.4})
    return exp


def test_midpoint_is_start_plus_half_the_exposure():
    info = visitinfo.VisitInfo.from_exposure(_exposure())
    assert (info.visit, info.detector, info.band) == (12, 4, "g")
    assert info.mjd == pytest.approx(60000.0 + 43.2 / 86400.0, abs=1e-12)
    assert info.exposure_time == 86.4


def test_region_contains_the_image_and_its_padding():
    exp = _exposure()
    region = visitinfo.VisitInfo.from_exposure(exp).region(pad_arcsec=2.0)
    pad_px = 2.0 / synthetic.PIXEL_SCALE
    xs = np.array([-0.5 - 0.9 * pad_px, 100.0, 199.5 + 0.9 * pad_px])
    ys = np.array([-0.5 - 0.9 * pad_px, 200.0, 399.5 + 0.9 * pad_px])
    for x in xs:
        for y in ys:
            ra, dec = exp.wcs.all_pix2world(x, y, 0)
            point = sphgeom.UnitVector3d(sphgeom.LonLat.fromDegrees(float(ra), float(dec)))
            assert region.contains(point)
    ra, dec = exp.wcs.all_pix2world(-0.5 - 3 * pad_px, 200.0, 0)
    assert not region.contains(
        sphgeom.UnitVector3d(sphgeom.LonLat.fromDegrees(float(ra), float(dec)))
    )


def test_missing_metadata_is_named():
    exp = _exposure()
    del exp.metadata["BAND"]
    with pytest.raises(ValueError, match="BAND"):
        visitinfo.VisitInfo.from_exposure(exp)
