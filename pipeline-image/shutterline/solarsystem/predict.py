"""Where known solar-system objects will be in a visit's field: positions, rates, magnitudes.

``predict_visit`` needs only the orbits and the scheduled time and pointing, so the driver can
run it before the raw arrives, in parallel with the image stages (it is a pure function of
its arguments: submit it to any executor).

Two passes keep it cheap over large catalogues: one two-body propagation of every orbit to
``mjd`` without light-time correction selects the objects within the field plus a margin
(light time moves an object by at most ``v / c``, under a minute of arc for any bound orbit),
then the light-time-corrected topocentric prediction (``orbits.predict_radec`` from the
observatory, `shutterline.camera.site.CTIO` by default), velocities, geometry and magnitudes
are computed for those few only.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.table import Table

from shutterline.camera import site as site_mod
from shutterline.solarsystem import mpcorbits
from shutterline.solarsystem import orbits as orbits_mod

__all__ = [
    "DEFAULT_POSITION_ERROR_ARCSEC",
    "MPC_PREFIX",
    "apparent_v_mag",
    "footprint_circle",
    "predict_from_lookup",
    "predict_visit",
    "ss_object_ids",
]

FloatArray = npt.NDArray[np.float64]

#: Prediction uncertainty reported when the orbits carry none (arcsec): the two-body
#: propagation itself is good to milliarcseconds over days, so this stands for the orbit
#: determination error, which our orbit table does not give.
DEFAULT_POSITION_ERROR_ARCSEC = 0.2

#: Prefix of the ``mpc_orbits`` columns a prediction from the nightly pieces carries along.
MPC_PREFIX = "mpc_"

#: Extra radius of the coarse pass (degrees); see the module docstring.
_COARSE_MARGIN_DEG = 0.05

#: Half-step of the central difference that gives on-sky rates (days).
_RATE_STEP_DAYS = 1.0 / 48.0


def ss_object_ids(ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """``ssObjectId`` (int64) of orbit ids: integers as they are, strings hashed to 63 bits."""
    arr = np.asarray(ids)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=8).digest(), "big") >> 1
            for v in arr
        ],
        dtype=np.int64,
    )


def apparent_v_mag(
    h_mag: FloatArray,
    r_au: FloatArray,
    delta_au: FloatArray,
    phase_deg: FloatArray,
    g: float = 0.15,
) -> FloatArray:
    """V magnitude in the IAU H-G system (Bowell et al. 1989), slope ``g`` (default 0.15)."""
    half_tan = np.tan(np.deg2rad(phase_deg) / 2.0)
    phi1 = np.exp(-3.33 * half_tan**0.63)
    phi2 = np.exp(-1.87 * half_tan**1.22)
    return h_mag + 5.0 * np.log10(r_au * delta_au) - 2.5 * np.log10((1 - g) * phi1 + g * phi2)


def _unit(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> FloatArray:
    ra = np.deg2rad(np.asarray(ra_deg, np.float64))
    dec = np.deg2rad(np.asarray(dec_deg, np.float64))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _coarse_selection(
    orbits: Table, mjd: float, centre: FloatArray, radius_deg: float
) -> npt.NDArray[np.intp]:
    """Indices of orbits within ``radius_deg`` plus a margin of the field centre."""
    geo = orbits_mod.heliocentric_positions(orbits, mjd) - orbits_mod.earth_heliocentric(mjd)
    cos_sep = (geo @ centre) / np.linalg.norm(geo, axis=1)
    return np.nonzero(cos_sep >= np.cos(np.deg2rad(radius_deg + _COARSE_MARGIN_DEG)))[0]


def _rates(orbits: Table, mjd: float, dec: FloatArray) -> tuple[FloatArray, FloatArray]:
    """On-sky rates (deg/day): RA including cos(dec), and Dec, by central difference.

    Geocentric: the diurnal parallax swings the topocentric track by arcseconds a day, which a
    rate meant for extrapolation over hours should not carry.
    """
    ra0, dec0, _ = orbits_mod.predict_radec(orbits, mjd - _RATE_STEP_DAYS)
    ra1, dec1, _ = orbits_mod.predict_radec(orbits, mjd + _RATE_STEP_DAYS)
    dra = (ra1 - ra0 + 180.0) % 360.0 - 180.0
    step = 2.0 * _RATE_STEP_DAYS
    return dra * np.cos(np.deg2rad(dec)) / step, (dec1 - dec0) / step


def footprint_circle(
    corners_radec: npt.ArrayLike, pad_arcsec: float = 10.0
) -> tuple[tuple[float, float], float]:
    """Centre and radius (degrees) of a circle around a footprint's corners, padded.

    Parameters
    ----------
    corners_radec : array_like
        ``(n, 2)`` ICRS (ra, dec) degrees, e.g. ``VisitInfo.corners`` of a detector.
    pad_arcsec : float
        Added to the radius so sources on the edge still find their prediction.
    """
    corners = np.asarray(corners_radec, np.float64)
    vectors = _unit(corners[:, 0], corners[:, 1])
    centre = vectors.mean(axis=0)
    centre /= np.linalg.norm(centre)
    radius = np.rad2deg(np.arccos(np.clip(vectors @ centre, -1.0, 1.0))).max()
    ra = float(np.rad2deg(np.arctan2(centre[1], centre[0])) % 360.0)
    dec = float(np.rad2deg(np.arcsin(np.clip(centre[2], -1.0, 1.0))))
    return (ra, dec), float(radius + pad_arcsec / 3600.0)


def predict_visit(
    orbits: Table,
    mjd: float,
    center_radec: tuple[float, float],
    radius_deg: float,
    position_error_arcsec: float = DEFAULT_POSITION_ERROR_ARCSEC,
    site: site_mod.Site | None = site_mod.CTIO,
) -> Table:
    """Predicted positions of the known objects inside a circular field at ``mjd``.

    Parameters
    ----------
    orbits : astropy.table.Table
        Orbit elements (``orbits.COLUMNS``: ``id, a_au, e, incl_deg, node_deg, argperi_deg,
        mean_anomaly_deg, epoch_mjd, h_mag``), any number of rows.
    mjd : float
        Exposure midpoint, MJD (TAI).
    center_radec : (float, float)
        Field centre (ICRS degrees).
    radius_deg : float
        Field radius (degrees); pad it by the detector's half-diagonal for a detector.
    position_error_arcsec : float
        Reported 1-sigma prediction error per axis.
    site : shutterline.camera.site.Site or None
        The observatory (topocentric prediction); None for the Earth's centre.

    Returns
    -------
    astropy.table.Table
        One row per object in the field: ``ss_object_id`` (int64), ``designation`` (str),
        ``ra, dec, ra_err, dec_err`` (deg), ``rate_ra, rate_dec`` (deg/day, RA rate includes
        cos dec), ``topo_range, helio_range`` (au, geocentric and heliocentric distance at
        light emission), ``topo_range_rate, helio_range_rate`` (au/day), ``phase_angle,
        elongation`` (deg), ``v_mag``, ``helio_x, helio_y, helio_z`` (au),
        ``helio_vx, helio_vy, helio_vz`` (au/day), ``topo_x ... topo_vz`` (geocentric, same
        units, from the observatory: topocentric with a site, else geocentric).
    """
    centre = _unit(center_radec[0], center_radec[1])
    near = orbits[_coarse_selection(orbits, mjd, centre, radius_deg)]
    ra, dec, delta = orbits_mod.predict_radec(near, mjd, site)
    inside = _unit(ra, dec) @ centre >= np.cos(np.deg2rad(radius_deg))
    near, ra, dec, delta = near[inside], ra[inside], dec[inside], delta[inside]
    columns = _describe(near, mjd, (ra, dec, delta), position_error_arcsec, site)
    return Table(columns, copy=False)


def _describe(
    near: Table,
    mjd: float,
    radec: tuple[FloatArray, FloatArray, FloatArray],
    err_arcsec: float,
    site: site_mod.Site | None,
) -> dict[str, npt.NDArray[Any]]:
    """The prediction columns, by name, for objects already known to be in the field (one
    table built from them at the end is much faster than 30 columns added one by one)."""
    ra, dec, delta = radec
    lt = delta / orbits_mod.C_AU_PER_DAY
    helio, helio_v = orbits_mod.heliocentric_state(near, mjd - lt)
    before, earth, after = orbits_mod.observer_heliocentric(
        mjd + _RATE_STEP_DAYS * np.array([-1.0, 0.0, 1.0]), site
    )
    earth_v = (after - before) / (2.0 * _RATE_STEP_DAYS)
    topo, topo_v = helio - earth, helio_v - earth_v
    r = np.linalg.norm(helio, axis=1)
    rng = np.linalg.norm(topo, axis=1)
    phase = np.rad2deg(np.arccos(np.clip(np.sum(helio * topo, axis=1) / (r * rng), -1, 1)))
    elong = np.rad2deg(np.arccos(np.clip(-(topo @ earth) / (rng * np.linalg.norm(earth)), -1, 1)))
    rate_ra, rate_dec = _rates(near, mjd, dec)
    out: dict[str, npt.NDArray[Any]] = {}
    out["ss_object_id"] = ss_object_ids(near["id"])
    out["designation"] = np.asarray([str(v) for v in near["id"]], dtype=str)
    out["ra"], out["dec"] = ra, dec
    out["ra_err"] = np.full(len(ra), err_arcsec / 3600.0)
    out["dec_err"] = np.full(len(ra), err_arcsec / 3600.0)
    out["rate_ra"], out["rate_dec"] = rate_ra, rate_dec
    out["topo_range"], out["helio_range"] = rng, r
    out["topo_range_rate"] = np.sum(topo * topo_v, axis=1) / rng
    out["helio_range_rate"] = np.sum(helio * helio_v, axis=1) / r
    out["phase_angle"], out["elongation"] = phase, elong
    out["v_mag"] = apparent_v_mag(np.asarray(near["h_mag"], float), r, rng, phase)
    for prefix, pos, vel in (("helio", helio, helio_v), ("topo", topo, topo_v)):
        for axis, name in enumerate("xyz"):
            out[f"{prefix}_{name}"] = pos[:, axis]
            out[f"{prefix}_v{name}"] = vel[:, axis]
    return out


def predict_from_lookup(
    found: Table, mjd: float, site: site_mod.Site | None = site_mod.CTIO
) -> Table:
    """The `predict_visit` table for objects found in the nightly pieces (`lookup`).

    Positions and their errors are the pieces' (DE421, topocentric, the catalogue's orbit
    quality); the geometry, rates and magnitudes of the few objects found come from their
    ``mpc_orbits`` elements as in `predict_visit`. The ``mpc_orbits`` columns follow, named
    with `MPC_PREFIX`, for the alerts' ``mpc_orbits`` records.
    """
    if len(found) == 0:
        return Table()  # nothing known in this footprint (`ssassociate` accepts it)
    columns = {name: np.asarray(found[name]) for name, _ in mpcorbits.COLUMNS}
    near = mpcorbits.to_orbits_table(columns)
    radec = tuple(np.asarray(found[k], np.float64) for k in ("ra", "dec", "delta"))
    out = _describe(near, mjd, radec, DEFAULT_POSITION_ERROR_ARCSEC, site)  # type: ignore[arg-type]
    out["designation"] = np.asarray([bytes(d).decode() for d in columns["designation"]], str)
    out["ra_err"] = np.asarray(found["ra_err"], np.float64)
    out["dec_err"] = np.asarray(found["dec_err"], np.float64)
    for name, values in columns.items():
        out[MPC_PREFIX + name] = values
    return Table(out, copy=False)
