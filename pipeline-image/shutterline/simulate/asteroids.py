"""Asteroids that cross the simulated detectors during the night.

Each asteroid is built backwards from where it should be seen: a random pixel of a random
simulated detector at the time of one of its field's science visits. It is placed on that
line of sight at a main-belt heliocentric distance, given a roughly circular prograde
velocity, and turned into orbital elements with ``elements_from_state``. Every position the
simulator draws and records afterwards comes from `shutterline.simulate.ephemeris`
(skyfield, JPL DE421, topocentric at CTIO, light-time), not from the pipeline's predictor,
so association is measured against an independent truth.

Brightness: ``m = h_mag + 5 log10(r delta) + color[band]`` with ``h_mag`` on the r band and
no phase term (the fields are near opposition).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy.table import Table, vstack

from shutterline.simulate import config, ephemeris, geometry, schedule
from shutterline.solarsystem import orbits

__all__ = ["ASTEROID_ID_BASE", "Track", "make_asteroids", "tracks_for"]

FloatArray = npt.NDArray[np.float64]
#: Asteroid ids start here (sky-source ids stay below it).
ASTEROID_ID_BASE = 90_000_000


@dataclass(frozen=True)
class Track:
    """Positions and fluxes of every asteroid at one exposure's mid-time, shape ``(n,)``."""

    ids: npt.NDArray[np.int64]
    ra: FloatArray
    dec: FloatArray
    flux_njy: FloatArray


def _unit_vectors(ra_deg: FloatArray, dec_deg: FloatArray) -> FloatArray:
    ra, dec = np.deg2rad(ra_deg), np.deg2rad(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)


def _states(
    rng: np.random.Generator, unit: FloatArray, earth: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Heliocentric (r, v) on the given lines of sight, and (r_h, delta), all equatorial."""
    n = len(unit)
    r_h = rng.uniform(2.0, 3.3, n)
    proj = unit @ earth
    delta = -proj + np.sqrt(proj**2 - earth @ earth + r_h**2)
    r = earth[None, :] + delta[:, None] * unit
    pole = orbits.ECLIPTIC_TO_EQUATORIAL @ np.array([0.0, 0.0, 1.0])
    along = np.cross(np.broadcast_to(pole, r.shape), r)
    along /= np.linalg.norm(along, axis=1)[:, None]
    # Tilt the direction of motion about the radius vector: inclinations up to ~15 degrees.
    rhat = r / np.linalg.norm(r, axis=1)[:, None]
    tilt = np.deg2rad(rng.uniform(-15.0, 15.0, n))[:, None]
    along = along * np.cos(tilt) + np.cross(rhat, along) * np.sin(tilt)
    speed = np.sqrt(orbits.GM_SUN / r_h) * rng.uniform(0.88, 1.12, n)
    v = along * speed[:, None] + rhat * (speed * rng.uniform(-0.08, 0.08, n))[:, None]
    return r, v, r_h, delta


def make_asteroids(
    cfg: config.SimConfig, fields: list[schedule.Field], plans: list[schedule.ExposurePlan]
) -> Table:
    """Orbits (``shutterline.solarsystem.orbits`` table) of asteroids crossing the detectors."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 41]))
    tables = []
    next_id = ASTEROID_ID_BASE + 1
    for fld in fields:
        visits = [p for p in plans if p.role == "science" and p.field == fld.name]
        for ccd in cfg.ccdnums:
            n = int(rng.poisson(cfg.asteroids_per_detector))
            if n == 0 or not visits:
                continue
            plan = visits[int(rng.integers(len(visits)))]
            w = geometry.detector_wcs(cfg, ccd, plan.ra, plan.dec)
            x, y = rng.uniform(20, cfg.nx - 20, n), rng.uniform(20, cfg.ny - 20, n)
            ra, dec = geometry.data_pixels_to_sky(w, cfg, x, y)
            earth = orbits.earth_heliocentric(plan.mjd_mid)
            r, v, r_h, delta = _states(rng, _unit_vectors(ra, dec), earth)
            mag = rng.uniform(19.0, 23.5, n)
            epoch = plan.mjd_mid - delta / orbits.C_AU_PER_DAY
            tables.append(
                orbits.elements_from_state(
                    r,
                    v,
                    epoch,
                    ids=np.arange(next_id, next_id + n),
                    h_mag=np.round(mag - 5.0 * np.log10(r_h * delta), 4),
                )
            )
            next_id += n
    if not tables:
        return orbits.make_orbits(np.zeros(0, np.int64), *([np.zeros(0)] * 8))
    return vstack(tables)


def tracks_for(orbit_table: Table, plans: list[schedule.ExposurePlan]) -> dict[int, Track]:
    """Asteroid positions and fluxes at the mid-time of every template and science exposure."""
    sky = [p for p in plans if p.role in ("template", "science")]
    ids = np.asarray(orbit_table["id"], dtype=np.int64)
    if not sky:
        return {}
    h_mag = np.asarray(orbit_table["h_mag"], dtype=float)
    ra, dec, delta, r_h = ephemeris.observe(orbit_table, np.array([p.mjd_mid for p in sky]))
    out: dict[int, Track] = {}
    for j, plan in enumerate(sky):
        mag = h_mag + 5.0 * np.log10(r_h[:, j] * delta[:, j])
        mag += config.BANDS[plan.band].asteroid_color
        flux = 10.0 ** (-0.4 * (mag - config.NJY_AB_ZERO_MAG))
        out[plan.expnum] = Track(ids, ra[:, j], dec[:, j], np.asarray(flux, dtype=float))
    return out
