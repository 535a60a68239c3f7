"""Two-body orbits: round trips, periods, and a planet against astropy's own ephemeris."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import coordinates, time
from astropy import units as u

from shutterline.solarsystem import orbits


def _random_orbits(n: int, seed: int) -> orbits.Table:
    rng = np.random.default_rng(seed)
    return orbits.make_orbits(
        np.arange(n),
        rng.uniform(0.8, 5.0, n),
        rng.uniform(0.0, 0.9, n),
        rng.uniform(0.0, 170.0, n),
        rng.uniform(0.0, 360.0, n),
        rng.uniform(0.0, 360.0, n),
        rng.uniform(0.0, 360.0, n),
        rng.uniform(59000.0, 61000.0, n),
        rng.uniform(12.0, 22.0, n),
    )


def test_table_has_the_documented_columns() -> None:
    table = _random_orbits(3, seed=0)
    assert table.colnames == [name for name, _ in orbits.COLUMNS]


def test_state_elements_state_round_trip() -> None:
    table = _random_orbits(500, seed=1)
    r, v = orbits.heliocentric_state(table, 60500.0)
    back = orbits.elements_from_state(r, v, 60500.0, ids=table["id"])
    r2, v2 = orbits.heliocentric_state(back, 60500.0)
    np.testing.assert_allclose(r2, r, atol=1e-12)
    np.testing.assert_allclose(v2, v, atol=1e-14)
    np.testing.assert_allclose(back["a_au"], table["a_au"], rtol=1e-10)
    np.testing.assert_allclose(back["e"], table["e"], atol=1e-10)
    np.testing.assert_allclose(back["incl_deg"], table["incl_deg"], atol=1e-8)


def test_round_trip_of_circular_and_ecliptic_orbits() -> None:
    # Node and argument of perihelion are undefined here; the state must still come back.
    table = orbits.make_orbits(
        [1, 2], 2.0, [0.0, 0.1], [0.0, 10.0], 40.0, 70.0, 100.0, 60000.0, 15.0
    )
    r, v = orbits.heliocentric_state(table, 60100.0)
    back = orbits.elements_from_state(r, v, 60100.0)
    r2, v2 = orbits.heliocentric_state(back, 60200.0)
    r1, v1 = orbits.heliocentric_state(table, 60200.0)
    np.testing.assert_allclose(r2, r1, atol=1e-10)
    np.testing.assert_allclose(v2, v1, atol=1e-12)


def test_ecliptic_frame_input_gives_the_same_elements() -> None:
    table = _random_orbits(20, seed=2)
    r, v = orbits.heliocentric_state(table, 60000.0)
    rot = orbits.ECLIPTIC_TO_EQUATORIAL
    ecl = orbits.elements_from_state(r @ rot, v @ rot, 60000.0, frame="ecliptic")
    eq = orbits.elements_from_state(r, v, 60000.0)
    np.testing.assert_allclose(ecl["mean_anomaly_deg"], eq["mean_anomaly_deg"], atol=1e-8)
    np.testing.assert_allclose(ecl["node_deg"], eq["node_deg"], atol=1e-8)


def test_circular_orbit_returns_after_one_period() -> None:
    a = 2.5
    period_days = 2.0 * np.pi * np.sqrt(a**3 / orbits.GM_SUN)
    # Kepler's third law: about 3.95 yr at 2.5 au.
    assert period_days / 365.25 == pytest.approx(3.953, abs=0.01)
    table = orbits.make_orbits([0], a, 0.0, 5.0, 30.0, 0.0, 10.0, 60000.0, 15.0)
    start = orbits.heliocentric_positions(table, 60000.0)
    half = orbits.heliocentric_positions(table, 60000.0 + period_days / 2)
    full = orbits.heliocentric_positions(table, 60000.0 + period_days)
    np.testing.assert_allclose(full, start, atol=1e-10)
    np.testing.assert_allclose(half, -start, atol=1e-10)
    assert np.linalg.norm(start) == pytest.approx(a, rel=1e-12)


def test_unbound_state_is_rejected() -> None:
    with pytest.raises(ValueError, match="bound"):
        orbits.elements_from_state([1.0, 0.0, 0.0], [0.0, 0.05, 0.0], 60000.0)
    with pytest.raises(ValueError, match="frame"):
        orbits.elements_from_state([1.0, 0.0, 0.0], [0.0, 0.01, 0.0], 60000.0, frame="galactic")


def _mars_state(mjd: float) -> tuple[np.ndarray, np.ndarray]:
    t = time.Time(mjd, format="mjd", scale="tai")
    with coordinates.solar_system_ephemeris.set("builtin"):
        mars_p, mars_v = coordinates.get_body_barycentric_posvel("mars", t)
        sun_p, sun_v = coordinates.get_body_barycentric_posvel("sun", t)
    r = (mars_p - sun_p).get_xyz().to_value(u.au)
    v = (mars_v - sun_v).get_xyz().to_value(u.au / u.day)
    return r, v


def _astropy_astrometric(body: str, mjd: float) -> coordinates.SkyCoord:
    """Light-time corrected geocentric direction, built from astropy's ephemeris alone."""
    t = time.Time(mjd, format="mjd", scale="tai")
    with coordinates.solar_system_ephemeris.set("builtin"):
        earth = coordinates.get_body_barycentric("earth", t)
        lt = 0.0 * u.s
        for _ in range(3):
            vec = coordinates.get_body_barycentric(body, t - lt) - earth
            lt = (vec.norm() / coordinates.Distance(1, u.au)).value * 499.00478 * u.s
    return coordinates.SkyCoord(vec, frame="icrs", representation_type="cartesian")


@pytest.mark.parametrize("days_after_epoch", [0.0, 5.0])
def test_mars_matches_astropy_ephemeris(days_after_epoch: float) -> None:
    epoch = 60600.0
    r, v = _mars_state(epoch)
    table = orbits.elements_from_state(r, v, epoch, ids=["mars"])
    ra, dec, dist = orbits.predict_radec(table, epoch + days_after_epoch)
    ref = _astropy_astrometric("mars", epoch + days_after_epoch)
    ours = coordinates.SkyCoord(ra[0] * u.deg, dec[0] * u.deg)
    # At the epoch only frames and light time differ (mas); 5 days of unperturbed two-body
    # motion drifts from the planetary theory by well under an arcsecond.
    limit = 0.01 if days_after_epoch == 0 else 1.0
    assert ours.separation(ref).to_value(u.arcsec) < limit
    assert dist[0] == pytest.approx(ref.cartesian.norm().to_value(u.au), rel=1e-5)


def test_prediction_is_vectorized_and_fast() -> None:
    import time as wallclock

    table = _random_orbits(100_000, seed=3)
    orbits.predict_radec(table, 60700.0)  # warm the ephemeris machinery
    # CPU time: the shared 2-core machine makes wall time meaningless for a bound.
    start = wallclock.process_time()
    ra, dec, dist = orbits.predict_radec(table, 60700.25)
    elapsed = wallclock.process_time() - start
    assert ra.shape == dec.shape == dist.shape == (100_000,)
    assert np.all((ra >= 0) & (ra < 360)) and np.all(np.abs(dec) <= 90)
    assert elapsed < 1.0
