"""Two-body Keplerian orbits, vectorized over whole tables of objects.

Frames, stated once for the package:

* Orbital elements (the ``Orbits`` table) are heliocentric and refer to the mean ecliptic and
  equinox of J2000, as the Minor Planet Center publishes them.
* Cartesian states (positions in au, velocities in au/day) are heliocentric and aligned with
  the ICRS equatorial axes, so they combine directly with astropy's solar-system ephemeris.
  ``elements_from_state`` takes such equatorial vectors unless told ``frame="ecliptic"``.
* Times are MJD floats on the TAI scale (the project's convention). Elapsed time is taken in
  TAI days; the TAI-TDB rate difference is far below anything two-body motion resolves.

Predicted sky positions are *astrometric*: the light-time corrected direction in ICRS, without
stellar aberration, from the Earth's centre or, given a `shutterline.camera.site.Site`, from
the observatory (topocentric: the parallax of a main-belt object is several arcseconds).
That is what a position measured against reference stars in the same image gives (the stars
are aberrated alike), so it compares directly with measured positions.
"""

from __future__ import annotations

import erfa
import numpy as np
import numpy.typing as npt
from astropy import coordinates, time
from astropy import units as u
from astropy.table import Table

from shutterline.camera import site as site_mod

__all__ = [
    "COLUMNS",
    "C_AU_PER_DAY",
    "ECLIPTIC_TO_EQUATORIAL",
    "GM_SUN",
    "OBLIQUITY_J2000_DEG",
    "earth_heliocentric",
    "elements_from_state",
    "heliocentric_positions",
    "heliocentric_state",
    "make_orbits",
    "observer_heliocentric",
    "predict_radec",
]

FloatArray = npt.NDArray[np.float64]

#: Gaussian gravitational constant squared: GM of the Sun in au^3 / day^2.
GM_SUN = 0.01720209895**2
#: Obliquity defining the J2000 ecliptic that MPC elements (and SPICE's ECLIPJ2000) refer to:
#: 84381.448", the IAU 1976 value, not IAU 2006's 84381.406" (that would turn every position
#: by up to 42 mas about the equinox).
OBLIQUITY_J2000_DEG = 84381.448 / 3600.0
#: Speed of light in au / day.
C_AU_PER_DAY = 173.1446326846693
#: Column names of an orbits table, in order, with their units.
COLUMNS = (
    ("id", None),
    ("a_au", u.au),
    ("e", None),
    ("incl_deg", u.deg),
    ("node_deg", u.deg),
    ("argperi_deg", u.deg),
    ("mean_anomaly_deg", u.deg),
    ("epoch_mjd", u.d),
    ("h_mag", u.mag),
)

_COS_EPS = np.cos(np.deg2rad(OBLIQUITY_J2000_DEG))
_SIN_EPS = np.sin(np.deg2rad(OBLIQUITY_J2000_DEG))
#: Rotation matrix taking ecliptic-J2000 column vectors to ICRS-aligned equatorial ones.
ECLIPTIC_TO_EQUATORIAL = np.array(
    [[1.0, 0.0, 0.0], [0.0, _COS_EPS, -_SIN_EPS], [0.0, _SIN_EPS, _COS_EPS]]
)


def make_orbits(
    ids: npt.ArrayLike,
    a_au: npt.ArrayLike,
    e: npt.ArrayLike,
    incl_deg: npt.ArrayLike,
    node_deg: npt.ArrayLike,
    argperi_deg: npt.ArrayLike,
    mean_anomaly_deg: npt.ArrayLike,
    epoch_mjd: npt.ArrayLike,
    h_mag: npt.ArrayLike,
) -> Table:
    """Build an orbits table (one row per object) with the columns of ``COLUMNS``.

    Scalars broadcast against arrays. Angles in degrees, ``a_au`` in au, ``epoch_mjd`` MJD
    (TAI), ``h_mag`` the absolute magnitude H.

    Raises
    ------
    ValueError
        If an orbit is not bound (``e`` outside ``[0, 1)`` or ``a_au <= 0``).
    """
    floats = [
        np.asarray(v, dtype=float)
        for v in (a_au, e, incl_deg, node_deg, argperi_deg, mean_anomaly_deg, epoch_mjd, h_mag)
    ]
    ids_arr, *values = np.broadcast_arrays(np.asarray(ids), *floats)
    if np.any((values[1] < 0) | (values[1] >= 1)) or np.any(values[0] <= 0):
        raise ValueError("orbits must be bound elliptical: need 0 <= e < 1 and a_au > 0")
    table = Table()
    for (name, unit), column in zip(COLUMNS, [ids_arr, *values], strict=True):
        table[name] = np.atleast_1d(np.array(column))
        if unit is not None:
            table[name].unit = unit
    return table


def _solve_kepler(mean_anomaly: FloatArray, e: FloatArray) -> FloatArray:
    """Eccentric anomaly E (radians) with ``E - e sin E = M``, by Newton's method.

    Starting from ``E = M + e sin M`` (or pi for high e) converges in a handful of
    iterations for every e < 1; a fixed count keeps the loop vectorized.
    """
    m = np.mod(mean_anomaly, 2.0 * np.pi)
    ecc = np.where(e > 0.8, np.pi, m + e * np.sin(m))
    for _ in range(30):
        f = ecc - e * np.sin(ecc) - m
        step = f / (1.0 - e * np.cos(ecc))
        ecc = ecc - step
        if np.all(np.abs(step) < 1e-14):
            break
    return ecc


def _column(orbits: Table, name: str) -> FloatArray:
    return np.asarray(orbits[name], dtype=float)


def heliocentric_state(orbits: Table, mjd: float | FloatArray) -> tuple[FloatArray, FloatArray]:
    """Heliocentric positions and velocities of every object at ``mjd``.

    Parameters
    ----------
    orbits : Table
        Orbits table (see ``make_orbits``), ``n`` rows.
    mjd : float or array of shape ``(n,)``
        Time(s), MJD (TAI); an array gives each object its own time.

    Returns
    -------
    r_au, v_au_per_day : arrays of shape ``(n, 3)``
        ICRS-aligned equatorial vectors in au and au/day.
    """
    a = _column(orbits, "a_au")
    e = _column(orbits, "e")
    n_motion = np.sqrt(GM_SUN / a**3)
    mean = np.deg2rad(_column(orbits, "mean_anomaly_deg")) + n_motion * (
        np.asarray(mjd, dtype=float) - _column(orbits, "epoch_mjd")
    )
    ecc = _solve_kepler(mean, e)
    cos_e, sin_e = np.cos(ecc), np.sin(ecc)
    root = np.sqrt(1.0 - e * e)
    # Perifocal coordinates (x toward perihelion), then rotate with the P and Q unit vectors.
    xp, yp = a * (cos_e - e), a * root * sin_e
    edot = n_motion / (1.0 - e * cos_e)
    vxp, vyp = -a * sin_e * edot, a * root * cos_e * edot
    p_vec, q_vec = _pq_vectors(orbits)
    r_ecl = xp[:, None] * p_vec + yp[:, None] * q_vec
    v_ecl = vxp[:, None] * p_vec + vyp[:, None] * q_vec
    return r_ecl @ ECLIPTIC_TO_EQUATORIAL.T, v_ecl @ ECLIPTIC_TO_EQUATORIAL.T


def _pq_vectors(orbits: Table) -> tuple[FloatArray, FloatArray]:
    """Ecliptic unit vectors toward perihelion (P) and 90 degrees ahead in the plane (Q)."""
    inc = np.deg2rad(_column(orbits, "incl_deg"))
    node = np.deg2rad(_column(orbits, "node_deg"))
    peri = np.deg2rad(_column(orbits, "argperi_deg"))
    co, so, cw, sw = np.cos(node), np.sin(node), np.cos(peri), np.sin(peri)
    ci, si = np.cos(inc), np.sin(inc)
    p_vec = np.stack([co * cw - so * sw * ci, so * cw + co * sw * ci, sw * si], axis=1)
    q_vec = np.stack([-co * sw - so * cw * ci, -so * sw + co * cw * ci, cw * si], axis=1)
    return p_vec, q_vec


def heliocentric_positions(orbits: Table, mjd: float | FloatArray) -> FloatArray:
    """Heliocentric ICRS-aligned positions, shape ``(n, 3)`` in au, of every object at ``mjd``."""
    return heliocentric_state(orbits, mjd)[0]


def elements_from_state(
    r_au: npt.ArrayLike,
    v_au_per_day: npt.ArrayLike,
    epoch_mjd: float | npt.ArrayLike,
    *,
    ids: npt.ArrayLike | None = None,
    h_mag: float | npt.ArrayLike = 20.0,
    frame: str = "equatorial",
) -> Table:
    """Osculating two-body elements from heliocentric state vectors.

    Parameters
    ----------
    r_au, v_au_per_day : array of shape ``(n, 3)`` or ``(3,)``
        Heliocentric position (au) and velocity (au/day), ICRS-aligned equatorial axes by
        default, or ecliptic J2000 with ``frame="ecliptic"``.
    epoch_mjd : float or array of shape ``(n,)``
        Epoch of the state, MJD (TAI); becomes the elements' epoch.
    ids, h_mag
        Object ids (default ``0..n-1``) and absolute magnitudes for the table.

    Returns
    -------
    Table
        An orbits table. For circular orbits the argument of perihelion is set to 0 and the
        mean anomaly counts from the node; for equatorial (ecliptic) ones the node is 0.

    Raises
    ------
    ValueError
        If ``frame`` is unknown or a state is not on a bound elliptical orbit.
    """
    r = np.atleast_2d(np.asarray(r_au, dtype=float))
    v = np.atleast_2d(np.asarray(v_au_per_day, dtype=float))
    if frame == "equatorial":
        r, v = (
            r @ ECLIPTIC_TO_EQUATORIAL,
            v @ ECLIPTIC_TO_EQUATORIAL,
        )  # row vectors: x @ R == (R.T x) = eq -> ecl
    elif frame != "ecliptic":
        raise ValueError(f"frame must be 'equatorial' or 'ecliptic', not {frame!r}")
    rnorm = np.linalg.norm(r, axis=1)
    inv_a = 2.0 / rnorm - np.sum(v * v, axis=1) / GM_SUN
    if np.any(inv_a <= 0):
        raise ValueError("state vector is not on a bound (elliptical) orbit")
    e, incl, node, argperi, mean = _angles(r, v, rnorm)
    return make_orbits(
        np.arange(len(r)) if ids is None else ids,
        1.0 / inv_a,
        e,
        np.rad2deg(incl),
        np.rad2deg(node) % 360.0,
        np.rad2deg(argperi) % 360.0,
        np.rad2deg(mean) % 360.0,
        epoch_mjd,
        h_mag,
    )


def _angles(r: FloatArray, v: FloatArray, rnorm: FloatArray) -> tuple[FloatArray, ...]:
    """(e, inclination, node, argument of perihelion, mean anomaly) in radians, from states.

    Angles come from atan2 of components in the orbital plane, so circular (no perihelion)
    and ecliptic (no node) orbits stay well defined.
    """
    h = np.cross(r, v)
    k_hat = h / np.linalg.norm(h, axis=1)[:, None]
    e_vec = np.cross(v, h) / GM_SUN - r / rnorm[:, None]
    e = np.linalg.norm(e_vec, axis=1)
    incl = np.arccos(np.clip(k_hat[:, 2], -1.0, 1.0))
    node_vec = np.stack([-h[:, 1], h[:, 0], np.zeros(len(h))], axis=1)
    node_len = np.linalg.norm(node_vec, axis=1)
    # Equatorial orbits have no node: measure from the x axis instead.
    n_hat = np.where(
        (node_len > 1e-12 * np.linalg.norm(h, axis=1))[:, None],
        node_vec / np.maximum(node_len, 1e-300)[:, None],
        [1.0, 0.0, 0.0],
    )
    m_hat = np.cross(k_hat, n_hat)
    node = np.arctan2(n_hat[:, 1], n_hat[:, 0])
    arg_lat = np.arctan2(np.sum(r * m_hat, axis=1), np.sum(r * n_hat, axis=1))
    argperi = np.where(
        e > 1e-11, np.arctan2(np.sum(e_vec * m_hat, axis=1), np.sum(e_vec * n_hat, axis=1)), 0.0
    )
    nu = arg_lat - argperi
    ecc_anom = np.arctan2(np.sqrt(1.0 - e * e) * np.sin(nu), e + np.cos(nu))
    return e, incl, node, argperi, ecc_anom - e * np.sin(ecc_anom)


def earth_heliocentric(mjd: float | FloatArray) -> FloatArray:
    """The Earth's heliocentric ICRS-aligned position at ``mjd`` (TAI), in au.

    Shape ``(3,)`` for one time, ``(n, 3)`` for ``n``; from astropy's builtin (ERFA)
    ephemeris, which works offline.
    """
    t = time.Time(mjd, format="mjd", scale="tai")
    with coordinates.solar_system_ephemeris.set("builtin"):
        earth = coordinates.get_body_barycentric("earth", t)
        sun = coordinates.get_body_barycentric("sun", t)
    return np.asarray((earth - sun).get_xyz().to_value(u.au).T, dtype=float)


_AU_M = 149_597_870_700.0


def observer_heliocentric(mjd: float | FloatArray, site: site_mod.Site | None = None) -> FloatArray:
    """Heliocentric ICRS-aligned position (au) of the Earth's centre or of ``site``.

    Shape ``(3,)`` for one time, ``(n, 3)`` for ``n`` (one call for several times is much
    cheaper than several calls). The site's terrestrial position is rotated to the celestial
    frame with ERFA's IAU 2006/2000A matrix; UT1 is taken as UTC and polar motion as zero
    (together under 30 m, 1e-4 arcsec of parallax at 1 au).
    """
    earth = earth_heliocentric(mjd)
    if site is None:
        return earth
    t = time.Time(mjd, format="mjd", scale="tai")
    tt, utc = t.tt, t.utc
    itrs = erfa.gd2gc(
        1, np.deg2rad(site.lon_deg), np.deg2rad(site.lat_deg), site.height_m
    )  # WGS84, metres
    c2t = erfa.c2t06a(tt.jd1, tt.jd2, utc.jd1, utc.jd2, 0.0, 0.0)  # (..., 3, 3)
    return np.asarray(earth + np.einsum("...ji,j->...i", c2t, itrs) / _AU_M, dtype=float)


def predict_radec(
    orbits: Table, mjd: float, site: site_mod.Site | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Astrometric ICRS positions of every object at ``mjd`` (TAI), from ``site`` if given.

    The object is taken back to the time its light left it (one light-time iteration, good
    to well under a milliarcsecond for main-belt distances) and seen from the Earth's centre,
    or the observatory, at ``mjd``; no aberration (see the module docstring).

    Returns
    -------
    ra_deg, dec_deg, distance_au : arrays of shape ``(n,)``
        Right ascension in [0, 360), declination, and distance at emission (geocentric, or
        topocentric with a site).
    """
    earth = observer_heliocentric(mjd, site)
    r, v = heliocentric_state(orbits, mjd)
    light_days = np.linalg.norm(r - earth, axis=1) / C_AU_PER_DAY
    # Back along the velocity over the light time (~0.01 d): the curvature error is under
    # a kilometre, far below a milliarcsecond, and saves a second Kepler solve.
    geo = r - v * light_days[:, None] - earth
    dist = np.linalg.norm(geo, axis=1)
    ra = np.rad2deg(np.arctan2(geo[:, 1], geo[:, 0])) % 360.0
    dec = np.rad2deg(np.arcsin(np.clip(geo[:, 2] / dist, -1.0, 1.0)))
    return ra, dec, dist
