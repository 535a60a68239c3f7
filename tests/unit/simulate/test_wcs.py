"""Sources land where the true (distorted) WCS says; the written TAN WCS is off by < 3 arcsec."""

from __future__ import annotations

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from shutterline.simulate import config, geometry, night, rawfile
from tests.unit.simulate import helpers


def test_injected_star_lands_on_the_true_wcs_pixel() -> None:
    p = helpers.plan(sky_e=100.0)
    true_wcs = geometry.detector_wcs(helpers.CFG, helpers.CCD, p.ra, p.dec)
    # A star at a non-integer pixel, then asked for by sky position.
    ra, dec = geometry.data_pixels_to_sky(
        true_wcs, helpers.CFG, np.array([97.3]), np.array([301.8])
    )
    sim = helpers.simulate(p, helpers.one_source(ra[0], dec[0], 2.0e5))
    img = helpers.electrons(sim)
    yy, xx = np.mgrid[292:312, 87:108]
    cut = img[292:312, 87:108] - np.median(img)
    x_c, y_c = (cut * xx).sum() / cut.sum(), (cut * yy).sum() / cut.sum()
    # Centroid noise for ~40000 e- on 100 e- sky is ~0.01 px.
    assert abs(x_c - 97.3) < 0.05 and abs(y_c - 301.8) < 0.05
    assert abs(sim.truth["x"][0] - 97.3) < 1e-6 and abs(sim.truth["y"][0] - 301.8) < 1e-6
    # The raw grid includes the overscan: the WCS of the file counts it.
    x_raw, _y_raw = true_wcs.all_world2pix(ra, dec, 0)
    assert abs(x_raw[0] - (97.3 + helpers.CFG.overscan)) < 1e-6


def _max_offset_arcsec(written: WCS, true_wcs: WCS, cfg: config.SimConfig) -> float:
    y, x = np.mgrid[0 : cfg.ny : 32, cfg.overscan : cfg.overscan + cfg.nx : 32]
    a = SkyCoord(*written.all_pix2world(x.ravel(), y.ravel(), 0), unit="deg")
    b = SkyCoord(*true_wcs.all_pix2world(x.ravel(), y.ravel(), 0), unit="deg")
    return float(a.separation(b).arcsec.max())


def test_written_wcs_is_off_by_at_most_three_arcsec(small_night: night.NightSummary) -> None:
    cfg = small_night.config
    truth = Table.read(small_night.out / "truth" / "sources.csv", format="ascii.csv")
    offsets = []
    for expnum in small_night.science + small_night.template:
        for ccd in small_night.ccdnums:
            path = rawfile.raw_path(small_night.out, expnum, ccd)
            primary, header = fits.getheader(path, 0), fits.getheader(path, 1)
            true_wcs = geometry.detector_wcs(cfg, ccd, primary["TELRA"], primary["TELDEC"])
            offsets.append(_max_offset_arcsec(WCS(header), true_wcs, cfg))
            # Truth pixel positions are those of the unperturbed WCS.
            rows = truth[(truth["visit"] == expnum) & (truth["detector"] == ccd)]
            x, y = geometry.sky_to_data_pixels(
                true_wcs, cfg, np.asarray(rows["ra"]), np.asarray(rows["dec"])
            )
            np.testing.assert_allclose(x, rows["x"], atol=1e-3)
            np.testing.assert_allclose(y, rows["y"], atol=1e-3)
    assert max(offsets) <= 3.0
    assert min(offsets) > 0.1  # really perturbed


def test_perturbation_bound_holds_for_outer_detectors() -> None:
    # Far from the boresight a rotation moves pixels most; the bound must still hold.
    cfg = config.SimConfig(detectors=62)
    rng = np.random.default_rng(5)
    worst = 0.0
    for ccd in (1, 3, 60, 62, 28):
        true_wcs = geometry.detector_wcs(cfg, ccd, 150.0, 60.0)
        for _ in range(5):
            written, _err = geometry.perturb_wcs(true_wcs, cfg, rng)
            worst = max(worst, _max_offset_arcsec(written, true_wcs, cfg))
    assert worst <= 3.0


def test_optics_distort_beyond_what_a_linear_wcs_follows() -> None:
    # The pipeline's astrometry target is 0.1 arcsec: a linear WCS must not reach it, on an
    # outer or a central detector, at full size or the small size of the tests.
    for cfg in (config.SimConfig(detectors=62), helpers.CFG):
        for ccd in (1, config.central_detectors(1)[0]):
            true_wcs = geometry.detector_wcs(cfg, ccd, 150.0, -30.0)
            assert true_wcs.sip is not None
            off = _max_offset_arcsec(geometry.linearized_wcs(true_wcs, cfg), true_wcs, cfg)
            assert 0.2 < off < 1.0, (cfg.nx, ccd, off)
