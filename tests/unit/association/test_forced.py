"""Forced PSF photometry recovers injected fluxes with honest errors."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from shutterline.association import forced
from shutterline.images import MaskBit
from tests.unit.association import synthetic

SHAPE = (200, 220)


def _targets(exposure, x, y, ids=None) -> Table:
    ra, dec = exposure.wcs.all_pix2world(x, y, 0)
    ids = np.arange(len(x)) + 1 if ids is None else ids
    return Table({"dia_object_id": ids, "ra": ra, "dec": dec})


def test_recovers_injected_flux_within_noise():
    rng = np.random.default_rng(3)
    n = 40
    # A grid 25 px apart (isolated sources) with random sub-pixel positions.
    gx, gy = np.meshgrid(np.arange(20, 200, 25.0), np.arange(20, 180, 25.0))
    x = gx.ravel()[:n] + rng.uniform(-0.5, 0.5, n)
    y = gy.ravel()[:n] + rng.uniform(-0.5, 0.5, n)
    flux = rng.uniform(500, 5000, n)  # image units
    diff = synthetic.make_exposure(SHAPE, x, y, flux, noise=10.0, njy_per_unit=2.0, seed=1)
    sci = synthetic.make_exposure(SHAPE, x, y, flux + 1000, noise=12.0, njy_per_unit=2.0, seed=2)
    out = forced.forced_photometry(diff, sci, _targets(diff, x, y))
    assert len(out) == n
    pull = (out["psf_flux"] - 2.0 * flux) / out["psf_flux_err"]
    assert np.all(np.abs(pull) < 5)
    # The error is the real scatter: pulls have unit spread (within sampling error of n=40).
    assert 0.7 < np.std(pull) < 1.35
    sci_pull = (out["science_flux"] - 2.0 * (flux + 1000)) / out["science_flux_err"]
    assert np.all(np.abs(sci_pull) < 5)
    # Optimal PSF-flux error for white noise: noise * sqrt(1 / sum(psf**2)) in nJy.
    psf = diff.psf.astype(float)
    expected_err = 2.0 * 10.0 / np.sqrt(np.sum(psf**2))
    assert np.median(out["psf_flux_err"]) == pytest.approx(expected_err, rel=0.05)


def test_off_image_positions_are_dropped_and_edges_flagged():
    x = np.array([50.0, 2.0, -40.0])
    y = np.array([50.0, 100.0, 100.0])
    diff = synthetic.make_exposure(SHAPE, x[:2], y[:2], np.array([1000.0, 1000.0]), seed=4)
    out = forced.forced_photometry(diff, diff, _targets(diff, x, y, ids=np.array([7, 8, 9])))
    assert out["dia_object_id"].tolist() == [7, 8]
    assert out["flag_edge"].tolist() == [False, True]
    assert np.isfinite(out["psf_flux"]).all()


def test_masked_pixels_are_ignored_and_fully_masked_is_flagged():
    x, y = np.array([60.0, 120.0]), np.array([60.0, 120.0])
    diff = synthetic.make_exposure(SHAPE, x, y, np.array([3000.0, 3000.0]), seed=5)
    # A wildly wrong pixel at the first source's centre, masked BAD: it must not count.
    diff.image[60, 60] = 1e6
    diff.mask[60, 60] = int(MaskBit.BAD)
    diff.mask[110:131, 110:131] = int(MaskBit.NO_DATA)
    out = forced.forced_photometry(diff, diff, _targets(diff, x, y))
    assert abs(out["psf_flux"][0] - 6000.0) < 5 * out["psf_flux_err"][0]
    assert out["flag_no_good_pixels"].tolist() == [False, True]
    assert np.isnan(out["psf_flux"][1])


def test_missing_psf_or_calibration_is_named():
    diff = synthetic.make_exposure(SHAPE, np.array([50.0]), np.array([50.0]), np.array([1.0]))
    diff.psf = None
    with pytest.raises(ValueError, match="PSF"):
        forced.psf_fluxes(diff, [50.0], [50.0])
    sci = synthetic.make_exposure(SHAPE, np.array([50.0]), np.array([50.0]), np.array([1.0]))
    del sci.metadata["NJY_PER_UNIT"]
    with pytest.raises(ValueError, match="NJY_PER_UNIT"):
        forced.psf_fluxes(sci, [50.0], [50.0])


def test_difference_errors_carry_its_measured_noise_scale():
    # Stage 5 records the difference's noise scale; forced errors use it like DIA errors.
    x, y = np.array([50.0, 120.0]), np.array([60.0, 90.0])
    diff = synthetic.make_exposure(SHAPE, x, y, np.array([1e3, 2e3]), seed=4)
    plain = forced.forced_photometry(diff, diff, _targets(diff, x, y))
    diff.metadata["NOISE_SCALE"] = 1.7
    scaled = forced.forced_photometry(diff, diff, _targets(diff, x, y))
    np.testing.assert_allclose(scaled["psf_flux_err"], 1.7 * plain["psf_flux_err"], rtol=1e-6)
    np.testing.assert_allclose(scaled["science_flux_err"], plain["science_flux_err"])
