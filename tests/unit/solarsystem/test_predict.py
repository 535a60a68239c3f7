"""Visit predictions of known asteroids and their association with DIA sources."""

from __future__ import annotations

import time

import numpy as np
import pytest
from astropy.table import Table

from shutterline.alerts import packet, serialize
from shutterline.camera import site
from shutterline.solarsystem import associate as ssassoc
from shutterline.solarsystem import orbits, predict

MJD = 60010.3
ARCSEC = 1.0 / 3600.0


def _main_belt(n: int, seed: int) -> Table:
    rng = np.random.default_rng(seed)
    return orbits.make_orbits(
        np.arange(n) + 1000,
        rng.uniform(2.1, 3.5, n),
        rng.uniform(0.0, 0.3, n),
        rng.uniform(0.0, 25.0, n),
        rng.uniform(0.0, 360.0, n),
        rng.uniform(0.0, 360.0, n),
        rng.uniform(0.0, 360.0, n),
        60000.0,
        rng.uniform(12.0, 20.0, n),
    )


def _separation_deg(ra1, dec1, ra2, dec2):
    a = predict._unit(ra1, dec1)
    b = predict._unit(ra2, dec2)
    return np.rad2deg(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


@pytest.fixture(scope="module")
def belt() -> Table:
    return _main_belt(20_000, seed=4)


@pytest.fixture(scope="module")
def field(belt):
    ra, dec, _ = orbits.predict_radec(belt, MJD)
    centre = (float(ra[17]), float(dec[17]))
    return centre, predict.predict_visit(belt, MJD, centre, 3.0)


def test_selects_exactly_the_objects_in_the_field(belt, field):
    centre, pred = field
    ra, dec, _ = orbits.predict_radec(belt, MJD, site.CTIO)
    inside = _separation_deg(ra, dec, *centre) < 3.0
    assert inside.sum() > 20
    assert sorted(pred["ss_object_id"]) == sorted(np.asarray(belt["id"])[inside])
    order = np.argsort(np.asarray(belt["id"])[inside])
    mine = np.argsort(pred["ss_object_id"])
    np.testing.assert_allclose(pred["ra"][mine], ra[inside][order], atol=1e-9)
    np.testing.assert_allclose(pred["dec"][mine], dec[inside][order], atol=1e-9)


def test_geometry_is_consistent(field):
    _, pred = field
    r, delta = pred["helio_range"], pred["topo_range"]
    big_r = np.linalg.norm(orbits.observer_heliocentric(MJD, site.CTIO))
    cos_phase = (r**2 + delta**2 - big_r**2) / (2 * r * delta)
    np.testing.assert_allclose(np.cos(np.deg2rad(pred["phase_angle"])), cos_phase, atol=1e-6)
    cos_elong = (big_r**2 + delta**2 - r**2) / (2 * big_r * delta)
    np.testing.assert_allclose(np.cos(np.deg2rad(pred["elongation"])), cos_elong, atol=1e-6)
    assert np.all((r > 1.8) & (r < 4.6))


def test_magnitude_follows_hg_system():
    assert predict.apparent_v_mag(np.array([15.0]), np.array([1.0]), np.array([1.0]), 0.0)[
        0
    ] == pytest.approx(15.0, abs=1e-12)
    far = predict.apparent_v_mag(np.array([15.0]), np.array([2.0]), np.array([1.0]), 0.0)[0]
    assert far == pytest.approx(15.0 + 5 * np.log10(2.0), abs=1e-12)
    faded = predict.apparent_v_mag(np.array([15.0]), np.array([1.0]), np.array([1.0]), 20.0)[0]
    assert 15.5 < faded < 16.5  # about 0.9 mag at 20 degrees for G = 0.15


def test_rates_predict_the_position_an_hour_later(belt, field):
    _, pred = field
    ids = np.asarray(belt["id"])
    later = belt[np.isin(ids, pred["ss_object_id"])]
    # Rates are geocentric (the diurnal parallax is not motion to extrapolate).
    ra1, dec1, _ = orbits.predict_radec(later, MJD + 1.0 / 24.0)
    ra0, dec0, _ = orbits.predict_radec(later, MJD)
    order = np.argsort(pred["ss_object_id"])
    dra = ((ra1 - ra0 + 180) % 360 - 180) * np.cos(np.deg2rad(dec0)) / ARCSEC
    ddec = (dec1 - dec0) / ARCSEC
    np.testing.assert_allclose(dra, pred["rate_ra"][order] / 24 / ARCSEC, atol=0.05)
    np.testing.assert_allclose(ddec, pred["rate_dec"][order] / 24 / ARCSEC, atol=0.05)


def test_vectorized_over_1e5_orbits_well_under_a_second():
    belt = _main_belt(100_000, seed=9)
    best = min(_timed(belt) for _ in range(3))
    assert best < 0.8, f"predict_visit took {best:.2f} s for 1e5 orbits"


def _timed(belt: Table) -> float:
    start = time.perf_counter()
    predict.predict_visit(belt, MJD, (10.0, 5.0), 1.1)
    return time.perf_counter() - start


def test_ss_object_ids_keep_integers_and_hash_strings_stably():
    np.testing.assert_array_equal(predict.ss_object_ids(np.array([5, 7])), [5, 7])
    first = predict.ss_object_ids(np.array(["2026 AB1", "Ceres"]))
    assert first.tolist() == predict.ss_object_ids(np.array(["2026 AB1", "Ceres"])).tolist()
    assert first[0] != first[1] and np.all(first > 0)


def _sources(pred: Table, seed: int) -> tuple[Table, np.ndarray]:
    """DIA sources: every predicted asteroid 0.3 arcsec off its prediction, plus noise."""
    rng = np.random.default_rng(seed)
    n_ast = len(pred)
    ra = np.concatenate([pred["ra"] + 0.3 * ARCSEC / np.cos(np.deg2rad(pred["dec"])), []])
    dec = np.asarray(pred["dec"], float)
    n_bg = 200
    ra_bg = np.median(pred["ra"]) + rng.uniform(-2, 2, n_bg)
    dec_bg = np.median(pred["dec"]) + rng.uniform(-2, 2, n_bg)
    table = Table(
        {
            "dia_source_id": np.arange(n_ast + n_bg, dtype=np.int64) + 10_000,
            "ra": np.concatenate([ra, ra_bg]),
            "dec": np.concatenate([dec, dec_bg]),
        }
    )
    truth = np.concatenate([np.asarray(pred["ss_object_id"]), np.zeros(n_bg, np.int64)])
    return table, truth


def test_association_finds_every_asteroid_and_nothing_else(field):
    _, pred = field
    table, truth = _sources(pred, seed=2)
    # Background sources that happen to lie within 2 arcsec of a prediction are not noise.
    sep = _separation_deg(
        np.asarray(table["ra"])[:, None],
        np.asarray(table["dec"])[:, None],
        np.asarray(pred["ra"])[None],
        np.asarray(pred["dec"])[None],
    )
    clean = (truth > 0) | (sep.min(axis=1) > 2 * ARCSEC)
    ss = ssassoc.ssassociate(table, pred, radius_arcsec=2.0)
    np.testing.assert_array_equal(np.asarray(table["ss_object_id"])[clean], truth[clean])
    assert len(ss) >= len(pred)
    mine = ss[np.isin(ss["ssObjectId"], pred["ss_object_id"])]
    np.testing.assert_allclose(mine["ephOffset"][: len(pred)], 0.3, atol=1e-3)
    np.testing.assert_allclose(mine["ephOffsetRa"][: len(pred)], 0.3, atol=1e-3)
    assert (mine["diaDistanceRank"] == 1).all()
    assert np.all((mine["helio_vtot"] > 10) & (mine["helio_vtot"] < 30))  # km/s, main belt


def test_ss_source_rows_fit_the_alert_schema(field):
    _, pred = field
    table, _ = _sources(pred, seed=3)
    ss = ssassoc.ssassociate(table, pred, radius_arcsec=2.0)
    schema = serialize.load_schema()
    for row in ssassoc.ss_source_records(ss).values():
        record = packet.conform(row, "ssSource", schema)
        assert record["ssObjectId"] > 0 and record["designation"]


def test_footprint_circle_covers_every_corner():
    corners = np.array([[149.9, 1.8], [150.05, 1.8], [150.05, 2.1], [149.9, 2.1]])
    (ra, dec), radius = predict.footprint_circle(corners, pad_arcsec=36.0)
    sep = _separation_deg(corners[:, 0], corners[:, 1], ra, dec)
    assert np.all(sep <= radius - 0.01 + 1e-9)
    assert radius - 0.01 == pytest.approx(sep.max())


def test_topocentric_parallax_of_the_main_belt(belt):
    # From CTIO the horizontal parallax is 8.794 arcsec / delta at most (Earth radius / 1 au).
    geo_ra, geo_dec, delta = orbits.predict_radec(belt, MJD)
    topo_ra, topo_dec, _ = orbits.predict_radec(belt, MJD, site.CTIO)
    shift = _separation_deg(geo_ra, geo_dec, topo_ra, topo_dec) * 3600.0
    assert np.all(shift <= 8.80 / delta * 1.001 + 1e-3)
    assert np.median(shift) > 1.0  # several arcsec: far beyond a 1 arcsec match radius
    obs = orbits.observer_heliocentric(MJD, site.CTIO) - orbits.earth_heliocentric(MJD)
    assert np.linalg.norm(obs) * 149_597_870.7 == pytest.approx(6373.0, abs=10.0)  # km
