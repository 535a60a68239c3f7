"""Simulate a small night, ingest it, certify calibrations, pre-cache, load: the round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from shutterline.butler import certify, ingest, inputs, names, precache, repo, selection
from shutterline.skymap import SKYMAP

from .conftest import make_exposure

pytestmark = pytest.mark.slow


def test_simulated_night_round_trip(tmp_path: Path) -> None:
    from shutterline.simulate import night

    summary = night.simulate_night(
        tmp_path / "sim",
        seed=11,
        visits=2,
        detectors=2,
        fields=1,
        nx=256,
        ny=512,
        template_visits=1,
        n_bias=2,
        n_flat=2,
    )
    butler = repo.create_repo(str(tmp_path / "central"))
    refs = ingest.ingest_raws(butler, [tmp_path / "sim" / "raw"], progress=False)
    assert len(refs) == summary.n_raw_files
    ingest.ingest_refcat(butler, [tmp_path / "sim" / "refcat" / "refcat.fits"], progress=False)
    ingest.ingest_orbits(butler, tmp_path / "sim" / "solarsystem" / "orbits.csv")
    visit, ccd = summary.science[0], summary.ccdnums[0]
    _certify_inputs(butler, summary, visit, ccd)

    report = precache.precache_detector(butler, str(tmp_path / "local"), visit, ccd)
    assert report.n_unverified == 0
    local = inputs.load_detector_inputs(repo.open_repo(str(tmp_path / "local")), visit, ccd)
    direct = inputs.load_detector_inputs(butler, visit, ccd)

    raw_path = tmp_path / "sim" / "raw" / str(visit) / f"raw_{visit}_{ccd:02d}.fits"
    np.testing.assert_array_equal(local.raw[1].data, fits.getdata(raw_path, 1))
    np.testing.assert_array_equal(local.raw[1].data, direct.raw[1].data)
    header = fits.getheader(raw_path, 0)
    # The header is UTC like DECam's; the pipeline's times are TAI (37 s later).
    assert header["TIMESYS"] == "UTC"
    assert (local.mjd - header["MJD-OBS"]) * 86400 == pytest.approx(37.0, abs=1e-3)
    assert local.band == summary.bands[0] and local.exptime == header["EXPTIME"]
    assert local.boresight == pytest.approx((header["TELRA"], header["TELDEC"]))
    orbits = Table.read(tmp_path / "sim" / "solarsystem" / "orbits.csv", format="ascii.csv")
    assert local.orbits is not None and len(local.orbits) == len(orbits)
    assert sorted(local.refcat["id"]) == sorted(direct.refcat["id"])
    assert len(local.templates) == len(direct.templates) > 0


def _certify_inputs(butler: Any, summary: Any, visit: int, ccd: int) -> None:
    """A bias and a flat per detector and band, and templates over the first visit's detector."""
    night_mjd = summary.config.night_mjd
    for detector in summary.ccdnums:
        certify.certify_calibration(
            butler, "bias", make_exposure(1.0), {"detector": detector}, night_mjd - 1, None
        )
        for band in summary.bands:
            data_id = {"detector": detector, "physical_filter": band}
            certify.certify_calibration(
                butler, "flat", make_exposure(1.0), data_id, night_mjd - 1, None
            )
    corners = selection.region_corners(
        butler.query_dimension_records(
            "visit_detector_region",
            data_id={"instrument": names.INSTRUMENT, "visit": visit, "detector": ccd},
            explain=False,
        )[0].region
    )
    for info in SKYMAP.patches_overlapping(corners[:, 0], corners[:, 1], 60.0):
        certify.put_template(butler, make_exposure(2.0), info.tract, info.patch, summary.bands[0])
