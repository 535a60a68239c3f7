"""Calibrations certified for validity ranges; templates on patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.time import Time
from lsst.daf.butler import Butler, Timespan
from lsst.daf.butler.registry import ConflictingDefinitionError

from shutterline.butler import certify, names, repo
from shutterline.skymap import SKYMAP

from .conftest import make_exposure


@pytest.fixture
def butler(tmp_path: Path) -> Butler:
    return repo.create_repo(str(tmp_path / "repo"))


def _bias_at(butler: Butler, mjd: float, detector: int = 3) -> float:
    when = Timespan.fromInstant(Time(mjd, format="mjd", scale="tai"))
    exposure = butler.get(
        names.BIAS,
        instrument=names.INSTRUMENT,
        detector=detector,
        collections=names.CALIB_COLLECTION,
        timespan=when,
    )
    return float(np.median(exposure.image))


def test_the_bias_valid_at_a_time_is_found(butler: Butler) -> None:
    certify.certify_calibration(butler, "bias", make_exposure(10.0), {"detector": 3}, 61000, 61100)
    certify.certify_calibration(butler, "bias", make_exposure(20.0), {"detector": 3}, 61100, None)
    assert _bias_at(butler, 61050.0) == pytest.approx(10.0, abs=0.01)
    assert _bias_at(butler, 61099.999) == pytest.approx(10.0, abs=0.01)
    assert _bias_at(butler, 61100.0) == pytest.approx(20.0, abs=0.01)
    assert _bias_at(butler, 65000.0) == pytest.approx(20.0, abs=0.01)
    with pytest.raises(LookupError):
        _bias_at(butler, 60999.0)


def test_flat_is_per_filter(butler: Butler) -> None:
    for value, band in ((1.1, "g"), (1.2, "r")):
        certify.certify_calibration(
            butler,
            "flat",
            make_exposure(value),
            {"detector": 3, "physical_filter": band},
            61000,
            None,
        )
    flat = butler.get(
        names.FLAT,
        instrument=names.INSTRUMENT,
        detector=3,
        physical_filter="r",
        collections=names.CALIB_COLLECTION,
        timespan=Timespan.fromInstant(Time(61001, format="mjd", scale="tai")),
    )
    assert float(np.median(flat.image)) == pytest.approx(1.2, abs=0.01)


def test_overlapping_validity_is_refused(butler: Butler) -> None:
    certify.certify_calibration(butler, "bias", make_exposure(10.0), {"detector": 3}, 61000, 61100)
    with pytest.raises(ConflictingDefinitionError):
        certify.certify_calibration(
            butler, "bias", make_exposure(11.0), {"detector": 3}, 61050, 61200
        )


def test_exposure_planes_round_trip(butler: Butler) -> None:
    original = make_exposure(5.0, seed=4)
    original.mask[2, 3] = 5
    original.metadata["BUNIT"] = "electron"
    ref = certify.certify_calibration(butler, "bias", original, {"detector": 4}, 61000, None)
    back = butler.get(ref)
    np.testing.assert_array_equal(back.image, original.image)
    np.testing.assert_array_equal(back.mask, original.mask)
    np.testing.assert_array_equal(back.variance, original.variance)
    assert back.metadata["BUNIT"] == "electron"


def test_template_registers_tract_and_patch_regions(butler: Butler) -> None:
    info = SKYMAP.patches_overlapping(np.array([150.0]), np.array([2.0]))[0]
    ref = certify.put_template(butler, make_exposure(7.0), info.tract, info.patch, "r")
    assert ref.run == names.TEMPLATE_COLLECTION
    (patch,) = butler.query_dimension_records(
        "patch",
        where="skymap = s AND tract = t AND patch = p",
        bind={"s": SKYMAP.name, "t": info.tract, "p": info.patch},
        explain=False,
    )
    assert (patch.cell_x, patch.cell_y) == info.index
    from lsst.sphgeom import LonLat, UnitVector3d

    centre = info.wcs.all_pix2world([[info.shape[1] / 2, info.shape[0] / 2]], 0)[0]
    assert patch.region.contains(UnitVector3d(LonLat.fromDegrees(*centre)))
