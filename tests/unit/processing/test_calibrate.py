"""Stage 3 entry point: the fitted WCS against truth, the zero point, failures."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from shutterline.exceptions import PermanentError
from shutterline.processing import calibrate, characterize
from tests.unit.processing import synthetic


@pytest.fixture(scope="module")
def calibrated(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> calibrate.CalibrateResult:
    return calibrate.calibrate(characterized.exposure, characterized.sources, scene.refcat, "r")


def _on_chip(scene: synthetic.Scene) -> np.ndarray:
    ny, nx = scene.config.shape
    s = scene.stars
    return np.asarray((s["x"] > 0) & (s["x"] < nx - 1) & (s["y"] > 0) & (s["y"] < ny - 1))


def test_wcs_maps_truth_back(scene: synthetic.Scene, calibrated: calibrate.CalibrateResult) -> None:
    stars = scene.stars[_on_chip(scene)]
    assert calibrated.exposure.wcs is not None
    assert scene.exposure.wcs is not None
    px, py = calibrated.exposure.wcs.wcs_world2pix(stars["ra"], stars["dec"], 0)
    err = np.hypot(px - stars["x"], py - stars["y"]) * synthetic.PIXEL_SCALE
    bx, by = scene.exposure.wcs.wcs_world2pix(stars["ra"], stars["dec"], 0)
    assert np.median(np.hypot(bx - stars["x"], by - stars["y"])) * 0.263 > 1.0  # was off
    assert np.median(err) < 0.05
    assert np.max(err) < 0.1
    assert calibrated.stats["astrometry_n_matched"] > 50
    assert calibrated.astrometry.rms_arcsec < 0.1


def test_sources_get_sky_and_calibrated_fluxes(
    scene: synthetic.Scene, calibrated: calibrate.CalibrateResult
) -> None:
    src = calibrated.sources
    for col in ("ra", "dec", "flux_njy", "flux_njy_err", "ref_id"):
        assert col in src.colnames
    matched = src[src["ref_id"] >= 0]
    truth = scene.stars[np.asarray(matched["ref_id"])]
    dra = (matched["ra"] - truth["ra"]) * np.cos(np.radians(truth["dec"]))
    sep_arcsec = np.hypot(dra, matched["dec"] - truth["dec"]) * 3600
    bright = matched["snr"] > 100
    assert np.median(sep_arcsec[bright]) < 0.05
    ratio = matched["flux_njy"][bright] / truth["flux_njy"][bright]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)


def test_zero_point_recovered(
    scene: synthetic.Scene, calibrated: calibrate.CalibrateResult
) -> None:
    cal = calibrated.photometry
    true = scene.config.njy_per_unit
    assert cal.njy_per_unit == pytest.approx(true, abs=3 * cal.njy_per_unit_err)
    assert cal.njy_per_unit_err < 0.005 * true
    meta = calibrated.exposure.metadata
    assert meta["NJY_PER_UNIT"] == cal.njy_per_unit
    assert meta["NJY_ERR"] == cal.njy_per_unit_err
    assert meta["MAGZERO"] == pytest.approx(31.4 - 2.5 * np.log10(true), abs=0.01)


def test_input_untouched(
    characterized: characterize.CharacterizeResult, calibrated: calibrate.CalibrateResult
) -> None:
    assert calibrated.exposure is not characterized.exposure
    assert "NJY_PER_UNIT" not in characterized.exposure.metadata
    assert characterized.exposure.wcs is not calibrated.exposure.wcs
    assert "ra" not in characterized.sources.colnames


def test_missing_band_column(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> None:
    with pytest.raises(PermanentError, match=r"visit 1234 detector 7.*'g_flux'"):
        calibrate.calibrate(characterized.exposure, characterized.sources, scene.refcat, "g")


def test_wrong_field_is_permanent(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> None:
    elsewhere = Table(scene.refcat, copy=True)
    elsewhere["ra"] = elsewhere["ra"] + 1.0  # a degree away: nothing overlaps
    with pytest.raises(PermanentError, match=r"astrometric fit failed for visit 1234 detector 7"):
        calibrate.calibrate(characterized.exposure, characterized.sources, elsewhere, "r")


def test_distorted_field_gets_sip() -> None:
    cfg = synthetic.SceneConfig(n_stars=700, distortion_px=4.0, seed=13)
    scene = synthetic.make_scene(cfg)
    char = characterize.characterize(scene.exposure)
    result = calibrate.calibrate(char.exposure, char.sources, scene.refcat, "r")
    wcs = result.exposure.wcs
    assert wcs is not None
    assert wcs.wcs.ctype[0] == "RA---TAN-SIP"
    stars = scene.stars[_on_chip(scene)]
    px, py = wcs.all_world2pix(stars["ra"], stars["dec"], 0)
    err = np.hypot(px - stars["x"], py - stars["y"]) * synthetic.PIXEL_SCALE
    assert np.median(err) < 0.05
    assert np.percentile(err, 95) < 0.1
    # The catalogue's sky positions go through the same full WCS, SIP terms included.
    src = result.sources[result.sources["ref_id"] >= 0]
    ra, dec = wcs.all_pix2world(src["x"], src["y"], 0)
    np.testing.assert_allclose(src["ra"], ra, atol=1e-9)
    np.testing.assert_allclose(src["dec"], dec, atol=1e-9)
    truth = scene.stars[np.asarray(src["ref_id"])]
    dra = (src["ra"] - truth["ra"]) * np.cos(np.radians(truth["dec"]))
    sep = np.hypot(dra, src["dec"] - truth["dec"]) * 3600
    bright = src["snr"] > 100
    assert np.median(sep[bright]) < 0.05 and np.percentile(sep[bright], 95) < 0.1


def test_masked_and_nan_reference_entries_are_skipped(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> None:
    ref = Table(scene.refcat, masked=True, copy=True)
    ref["r_flux"][::3] = 1e12  # garbage under the mask: must not be read
    ref["r_flux"].mask[::3] = True  # a third of the fluxes missing
    ref["dec"][1::3] = np.nan  # and a third of the positions unusable
    result = calibrate.calibrate(characterized.exposure, characterized.sources, ref, "r")
    cal = result.photometry
    true = scene.config.njy_per_unit
    assert cal.njy_per_unit == pytest.approx(true, abs=3 * cal.njy_per_unit_err)
    assert result.astrometry.rms_arcsec < 0.1
