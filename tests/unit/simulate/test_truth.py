"""Truth tables: transients appear during the night, asteroids follow their orbits."""

from __future__ import annotations

import numpy as np
import yaml
from astropy.coordinates import SkyCoord
from astropy.table import Table

from shutterline.camera import site
from shutterline.simulate import geometry, night, sky
from shutterline.solarsystem import orbits
from tests.unit.simulate import helpers


def _truth(summary: night.NightSummary) -> Table:
    return Table.read(summary.out / "truth" / "sources.csv", format="ascii.csv")


def test_truth_has_the_documented_columns(small_night: night.NightSummary) -> None:
    truth = _truth(small_night)
    for name in ("id", "kind", "visit", "detector", "ra", "dec", "band", "flux_nJy", "x", "y"):
        assert name in truth.colnames
    assert set(truth["kind"]) == {"static", "variable", "transient", "asteroid"}
    assert set(truth["visit"]) <= set(small_night.template + small_night.science)
    # One row per source per visit and detector.
    keys = set(zip(truth["id"], truth["visit"], truth["detector"], strict=True))
    assert len(keys) == len(truth)


def test_transients_are_absent_from_templates_and_appear_tonight(
    small_night: night.NightSummary,
) -> None:
    truth = _truth(small_night)
    trans = truth[truth["kind"] == "transient"]
    assert not np.any(np.isin(trans["visit"], small_night.template))
    assert np.all(np.isin(trans["visit"], small_night.science)) and len(trans) > 0
    assert np.all(trans["flux_nJy"] > 0)


def test_transient_pixels_absent_before_onset_present_after() -> None:
    p_before = helpers.plan(mjd=61280.10, sky_e=100.0)
    p_after = helpers.plan(mjd=61280.30, sky_e=100.0, expnum=500002)
    true_wcs = geometry.detector_wcs(helpers.CFG, helpers.CCD, 30.0, -10.0)
    ra, dec = geometry.data_pixels_to_sky(
        true_wcs, helpers.CFG, np.array([150.0]), np.array([200.0])
    )
    cat = helpers.one_source(ra[0], dec[0], 1.0e5, kind="transient", t_on=61280.2)
    sums = []
    for p in (p_before, p_after):
        sim = helpers.simulate(p, cat)
        img = helpers.electrons(sim)
        sums.append(img[185:216, 135:166].sum() - np.median(img) * 31 * 31)
        expected = 0 if p is p_before else 1
        assert len(sim.truth.get("id", [])) == expected
    flux_e = sky.flux_at(cat, "r", p_after.mjd_mid)[0] / p_after.njy_per_electron
    noise = np.sqrt(31 * 31 * (100.0 + 49.0))
    assert abs(sums[0]) < 5 * noise
    assert abs(sums[1] - flux_e) < 5 * noise


def test_asteroid_truth_is_topocentric_and_independent(small_night: night.NightSummary) -> None:
    # Truth comes from skyfield + DE421 seen from CTIO; the pipeline's own predictor must
    # agree only when it, too, is topocentric: geocentric is off by the parallax.
    truth = _truth(small_night)
    table = Table.read(small_night.out / "solarsystem" / "orbits.csv", format="ascii.csv")
    assert table.colnames == [name for name, _ in orbits.COLUMNS]
    ast = truth[truth["kind"] == "asteroid"]
    assert len(set(ast["id"])) >= 3
    topo_sep, geo_sep = [], []
    for row in ast:
        sel = table[table["id"] == row["id"]]
        there = SkyCoord(row["ra"], row["dec"], unit="deg")
        for seps, where in ((topo_sep, site.CTIO), (geo_sep, None)):
            ra, dec, _ = orbits.predict_radec(sel, float(row["mjd"]), where)
            seps.append(SkyCoord(ra[0], dec[0], unit="deg").separation(there).arcsec)
    assert max(topo_sep) < 0.15  # two implementations of the same geometry
    assert np.median(geo_sep) > 1.0  # the parallax a geocentric predictor misses
    # They move: between the first and last visit of a field, tens of arcsec.
    moved = []
    for ident in set(ast["id"]):
        rows = ast[ast["id"] == ident]
        if len(rows) > 1:
            a = SkyCoord(rows["ra"][0], rows["dec"][0], unit="deg")
            b = SkyCoord(rows["ra"][-1], rows["dec"][-1], unit="deg")
            hours = (rows["mjd"][-1] - rows["mjd"][0]) * 24
            moved.append(a.separation(b).arcsec / hours)
    assert moved and 5.0 < np.median(moved) < 150.0  # main-belt rates, arcsec per hour


def test_variables_span_difference_snr_around_ten(small_night: night.NightSummary) -> None:
    truth = _truth(small_night)
    record = yaml.safe_load((small_night.out / "night.yaml").read_text())
    sigma = {v["visit"]: v["point_source_sigma_njy"] for v in record["visits"]}
    var = truth[truth["kind"] == "variable"]
    tmpl = var[np.isin(var["visit"], small_night.template)]
    sci = var[np.isin(var["visit"], small_night.science)]
    mean_t = {i: np.mean(tmpl["flux_nJy"][tmpl["id"] == i]) for i in set(tmpl["id"])}
    snr = [
        abs(r["flux_nJy"] - mean_t[r["id"]]) / sigma[r["visit"]] for r in sci if r["id"] in mean_t
    ]
    assert min(snr) < 10 < max(snr)


def test_night_record_lists_conditions(small_night: night.NightSummary) -> None:
    record = yaml.safe_load((small_night.out / "night.yaml").read_text())
    assert record["seed"] == small_night.seed
    assert record["exposures"]["science"] == small_night.science
    seeing = [v["seeing_fwhm_arcsec"] for v in record["visits"]]
    assert min(seeing) >= 0.8 and max(seeing) <= 2.0 and np.ptp(seeing) > 0.2
    for v in record["visits"]:
        assert v["njy_per_electron"] > 0 and v["airmass"] >= 1.0
        assert set(v["wcs_error"]) == set(small_night.ccdnums)


def test_schedule_interleaves_fields_every_half_hour(small_night: night.NightSummary) -> None:
    sched = yaml.safe_load((small_night.out / "schedule.yaml").read_text())["visits"]
    assert [v["visit"] for v in sched] == small_night.science
    mjds = [v["mjd"] for v in sched]
    assert mjds == sorted(mjds)
    fields = [v["field"] for v in sched]
    assert fields[0] != fields[1]
    for name in set(fields):
        times = np.array([v["mjd"] for v in sched if v["field"] == name])
        np.testing.assert_allclose(np.diff(times) * 1440, 30.0, atol=1.0)
    assert all(v["detectors"] == list(small_night.ccdnums) for v in sched)


def test_refcat_stars_match_truth(small_night: night.NightSummary) -> None:
    ref = Table.read(small_night.out / "refcat" / "refcat.fits")
    for band in "gri":
        assert f"{band}_flux" in ref.colnames and f"{band}_fluxErr" in ref.colnames
    truth = _truth(small_night)
    static = truth[(truth["kind"] == "static") & (truth["extended"] == 0)]
    _, first = np.unique(np.asarray(static["id"]), return_index=True)
    static = static[first]
    common, i_ref, i_tru = np.intersect1d(ref["id"], static["id"], return_indices=True)
    assert len(common) > 10
    sep = (
        SkyCoord(ref["ra"][i_ref], ref["dec"][i_ref], unit="deg")
        .separation(SkyCoord(static["ra"][i_tru], static["dec"][i_tru], unit="deg"))
        .arcsec
    )
    assert np.median(sep) < 0.03 and np.max(sep) < 0.1  # ~10 mas errors
    band = small_night.bands[0]
    rows = static[i_tru][static[i_tru]["band"] == band]
    refs = ref[i_ref][static[i_tru]["band"] == band]
    pull = (refs[f"{band}_flux"] - rows["flux_nJy"]) / refs[f"{band}_fluxErr"]
    assert 0.5 < np.std(pull) < 1.6
