"""The simulator's asteroid truth: skyfield with JPL DE421, topocentric at CTIO, light-time.

Independent of the pipeline's predictor (`shutterline.solarsystem.orbits.predict_radec`),
which the simulator must not use for truth: Sun and Earth come from the JPL DE421
Chebyshev arrays shipped by the ``de421`` package, read through jplephem's old-style
interface (``jplephem.ephem.Ephemeris``; the package ships ``.npy`` arrays, not the ``.bsp``
SPK kernel skyfield's loader wants, and nothing here may download one). They are wrapped as
skyfield vector functions, so skyfield does the rest: the two-body orbit from the elements
(``keplerlib``, mean ecliptic J2000), the observatory on the WGS84 ellipsoid with the
Earth's rotation from skyfield's built-in time scale, and ``observe``'s light-time solution.
Positions are astrometric ICRS (light-time corrected, no aberration), as the refcat's stars.
"""

from __future__ import annotations

import functools

import de421
import numpy as np
import numpy.typing as npt
from astropy.table import Table
from jplephem import ephem
from skyfield import api, keplerlib, vectorlib
from skyfield.constants import AU_KM
from skyfield.data import spice

__all__ = ["SITE", "observe"]

FloatArray = npt.NDArray[np.float64]

#: The Blanco 4 m telescope at Cerro Tololo (DECam's site): latitude, longitude (deg), metres.
SITE = (-30.16606, -70.81489, 2215.0)
#: GM of the Sun the orbit table's elements use (Gauss's constant squared), km^3 / s^2.
_GM_SUN_KM3_S2 = 0.01720209895**2 * AU_KM**3 / 86400.0**2


class _DE421(vectorlib.VectorFunction):
    """One DE421 body relative to the solar-system barycentre (NAIF ids: Sun 10, Earth 399)."""

    center = 0

    def __init__(self, target: int) -> None:
        self.target = target

    def _at(self, t: object) -> tuple[FloatArray, FloatArray, None, None]:
        eph = _ephemeris()
        whole, fraction = t.whole, t.tdb_fraction  # type: ignore[attr-defined]
        if self.target == 10:
            p, v = eph.position_and_velocity("sun", whole, fraction)
        else:
            p, v = eph.position_and_velocity("earthmoon", whole, fraction)
            pm, vm = eph.position_and_velocity("moon", whole, fraction)
            p, v = p - pm * eph.earth_share, v - vm * eph.earth_share
        if np.ndim(whole) == 0:  # jplephem answers a scalar time with shape (3, 1)
            p, v = p[:, 0], v[:, 0]
        return p / AU_KM, v / AU_KM, None, None


@functools.cache
def _ephemeris() -> ephem.Ephemeris:
    return ephem.Ephemeris(de421)


@functools.cache
def _timescale() -> object:
    return api.load.timescale(builtin=True)


def _orbit(row: object, ts: object) -> vectorlib.VectorFunction:
    a, e = float(row["a_au"]), float(row["e"])  # type: ignore[index]
    epoch = ts.tai_jd(float(row["epoch_mjd"]) + 2400000.5)  # type: ignore[attr-defined,index]
    orbit = keplerlib._KeplerOrbit._from_mean_anomaly(
        a * (1.0 - e * e),
        e,
        float(row["incl_deg"]),  # type: ignore[index]
        float(row["node_deg"]),  # type: ignore[index]
        float(row["argperi_deg"]),  # type: ignore[index]
        float(row["mean_anomaly_deg"]),  # type: ignore[index]
        epoch,
        _GM_SUN_KM3_S2,
        10,
        str(row["id"]),  # type: ignore[index]
    )
    orbit._rotation = spice.inertial_frames["ECLIPJ2000"].T
    return _DE421(10) + orbit


def observe(orbit_table: Table, mjds_tai: FloatArray) -> tuple[FloatArray, ...]:
    """Astrometric topocentric positions of every orbit at every time, from CTIO.

    Parameters
    ----------
    orbit_table : astropy.table.Table
        Orbital elements (`shutterline.solarsystem.orbits.COLUMNS`).
    mjds_tai : array of shape ``(m,)``
        Times (MJD, TAI).

    Returns
    -------
    ra_deg, dec_deg, delta_au, r_helio_au : arrays of shape ``(n, m)``
        ICRS position, topocentric distance and heliocentric distance (at emission).
    """
    ts = _timescale()
    t = ts.tai_jd(np.asarray(mjds_tai, dtype=float) + 2400000.5)  # type: ignore[attr-defined]
    observer = _DE421(399) + api.wgs84.latlon(SITE[0], SITE[1], elevation_m=SITE[2])
    seen = observer.at(t)
    n, m = len(orbit_table), len(np.atleast_1d(mjds_tai))
    ra, dec, delta, r_h = (np.zeros((n, m)) for _ in range(4))
    for i, row in enumerate(orbit_table):
        body = _orbit(row, ts)
        astrometric = seen.observe(body)
        r, d, dist = astrometric.radec()
        ra[i], dec[i], delta[i] = r._degrees % 360.0, d.degrees, dist.au
        # Heliocentric distance at the time the light left the asteroid.
        emitted = ts.tt_jd(t.tt - astrometric.light_time)  # type: ignore[attr-defined]
        r_h[i] = np.linalg.norm(
            body.at(emitted).position.au - _DE421(10).at(emitted).position.au, axis=0
        )
    return ra, dec, delta, r_h
