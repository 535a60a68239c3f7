"""Planning and pre-caching a detector from its visit's announcement, before its raw exists."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from shutterline import exceptions
from shutterline.butler import (
    footprint,
    formatters,
    ingest,
    inputs,
    planfile,
    precache,
    rawheaders,
    repo,
    selection,
)
from shutterline.simulate import config, geometry

from . import sameinputs
from .conftest import DEC, RA, VISIT_MJD, Central, write_raw

ANNOUNCED = selection.Announcement(
    visit=1001,
    detector=1,
    band="r",
    physical_filter="r DECam SDSS c0002 6415.0 1480.0",
    ra=RA,
    dec=DEC,
    rotation=0.0,
    mjd=VISIT_MJD + 0.01,
    exptime=30.0,
)


def _separation_arcsec(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each corner of ``a``, the distance to the nearest corner of ``b``."""
    xa, ea = footprint.to_tangent_plane(a[:, 0], a[:, 1], a[:, 0].mean(), a[:, 1].mean())
    xb, eb = footprint.to_tangent_plane(b[:, 0], b[:, 1], a[:, 0].mean(), a[:, 1].mean())
    return np.hypot(xa[:, None] - xb[None, :], ea[:, None] - eb[None, :]).min(axis=1) * 3600.0


def _camera_raw(path: Path, expnum: int, ccdnum: int, ra: float, dec: float) -> Path:
    """A raw whose WCS places the detector as the simulated camera does (a rigid focal
    plane around the boresight), on a 64 x 64 science area with 4 overscan columns."""
    write_raw(path, expnum, ccdnum, ra=ra, dec=dec, shape=(64, 64), seed=expnum)
    cfg = config.SimConfig(nx=64, ny=64, overscan=4)
    wcs = geometry.detector_wcs(cfg, ccdnum, ra, dec).wcs
    with fits.open(path, mode="update") as hdul:
        header = hdul[1].header
        header["CRVAL1"], header["CRVAL2"] = wcs.crval
        header["CRPIX1"], header["CRPIX2"] = wcs.crpix
        (header["CD1_1"], header["CD1_2"]), (header["CD2_1"], header["CD2_2"]) = wcs.cd
    return path


def test_tangent_plane_round_trip_across_ra_zero() -> None:
    rng = np.random.default_rng(3)
    ra = (359.5 + rng.uniform(0.0, 1.0, 50)) % 360.0
    dec = -30.0 + rng.uniform(-1.0, 1.0, 50)
    xi, eta = footprint.to_tangent_plane(ra, dec, 0.1, -30.2)
    back_ra, back_dec = footprint.from_tangent_plane(xi, eta, 0.1, -30.2)
    np.testing.assert_allclose((back_ra - ra + 180.0) % 360.0 - 180.0, 0.0, atol=1e-10)
    np.testing.assert_allclose(back_dec, dec, atol=1e-10)
    assert np.all(np.abs(xi) < 1.2) and np.all(np.abs(eta) < 1.2)


@pytest.mark.slow
def test_footprint_predicted_from_earlier_visits_matches_the_raw(tmp_path: Path) -> None:
    butler = repo.create_repo(str(tmp_path / "repo"))
    pointings = [(150.0, 2.0), (210.0, -25.0), (10.0, 40.0)]
    earlier = [
        _camera_raw(tmp_path / f"raw_{2000 + i}.fits", 2000 + i, 5, ra, dec)
        for i, (ra, dec) in enumerate(pointings)
    ]
    ingest.ingest_raws(butler, earlier, progress=False)
    new = _camera_raw(tmp_path / "raw_3000.fits", 3000, 5, 330.0, -60.0)
    truth = rawheaders.read_raw_info(new).corners
    assert truth is not None
    predicted = footprint.predict_corners(butler, 5, 330.0, -60.0)
    # The layout is the same on every visit, so the prediction holds far from where it was
    # learned, to well inside the margin left for the raw WCS error.
    assert _separation_arcsec(truth, predicted).max() < 0.2 * footprint.WCS_MARGIN_ARCSEC
    # A turned focal plane turns the detector's offset from the boresight with it.
    turned = footprint.predict_corners(butler, 5, 330.0, -60.0, rotation=90.0)
    xi0, eta0 = footprint.to_tangent_plane(predicted[:, 0], predicted[:, 1], 330.0, -60.0)
    xi1, eta1 = footprint.to_tangent_plane(turned[:, 0], turned[:, 1], 330.0, -60.0)
    np.testing.assert_allclose(xi1, eta0, atol=1e-9)
    np.testing.assert_allclose(eta1, -xi0, atol=1e-9)
    with pytest.raises(exceptions.MissingInputError, match="no earlier science visit"):
        footprint.predict_corners(butler, 6, 330.0, -60.0)


@pytest.mark.slow
def test_announced_plan_holds_what_the_raw_would_select(shared_central: Central) -> None:
    butler = shared_central.butler
    corners = footprint.predict_corners(butler, 1, RA, DEC)
    padding = 60.0 + footprint.WCS_MARGIN_ARCSEC
    announced = selection.plan_announced(butler, ANNOUNCED, corners, padding)
    actual = selection.plan_detector(butler, 1001, 1, 60.0)
    assert announced.raw is None and announced.visit_data_id is None
    assert announced.physical_filter == "r"  # the registry's name for the announced filter
    assert announced.bias.ref == actual.bias.ref and announced.flat.ref == actual.flat.ref
    assert {r.id for _, r in actual.templates} <= {r.id for _, r in announced.templates}
    assert {r.id for r in actual.refcat} <= {r.id for r in announced.refcat}
    assert set(actual.refs) - {actual.raw} <= set(announced.refs)
    assert actual.raw not in announced.refs


def test_announced_plan_refuses_a_filter_of_another_band(shared_central: Central) -> None:
    wrong = dataclasses.replace(ANNOUNCED, physical_filter="g", band="r")
    with pytest.raises(exceptions.PermanentError, match="'g' is in band 'g', not 'r'"):
        selection.plan_announced(shared_central.butler, wrong, np.zeros((4, 2)))


@pytest.mark.slow
def test_prestaged_repository_loads_the_same_inputs(
    shared_central: Central, tmp_path: Path
) -> None:
    local_root = tmp_path / "local"
    report = precache.precache_announced(shared_central.butler, str(local_root), ANNOUNCED)
    assert report.n_unverified == 0 and report.n_datasets >= 4
    announced, corners, padding = precache.read_prestaged(local_root)
    assert announced == ANNOUNCED and padding == 60.0 + footprint.WCS_MARGIN_ARCSEC
    local = repo.open_repo(str(local_root))
    plan = planfile.read_plan(local_root, local.dimensions, 1001, 1)  # what the pod reads
    # The recorded plan is the one planning again from the announcement on the local
    # registry gives (what the pipeline container did before): same refs, same order.
    sameinputs.assert_same_plan(plan, selection.plan_announced(local, announced, corners, padding))
    assert plan.raw is None and plan.visit_data_id is None
    raw_path = shared_central.root / "raw" / "raw_1001_01.fits"
    loaded = inputs.inputs_from(
        plan, inputs.read_inputs(local, plan), raw=formatters.read_raw_file(str(raw_path))
    )
    direct = inputs.load_detector_inputs(shared_central.butler, 1001, 1)
    np.testing.assert_array_equal(loaded.raw[1].data, direct.raw[1].data)
    np.testing.assert_array_equal(loaded.bias.image, direct.bias.image)
    np.testing.assert_array_equal(loaded.flat.image, direct.flat.image)
    assert {(p.tract, p.patch) for p, _ in direct.templates} <= {
        (p.tract, p.patch) for p, _ in loaded.templates
    }
    assert set(direct.refcat["id"]) <= set(loaded.refcat["id"])
    with pytest.raises(ValueError, match="the plan has no raw"):
        inputs.inputs_from(plan, inputs.read_inputs(local, plan))


def test_read_prestaged_names_a_repository_never_prestaged(tmp_path: Path) -> None:
    with pytest.raises(exceptions.MissingInputError, match="did the precache step run"):
        precache.read_prestaged(tmp_path)
