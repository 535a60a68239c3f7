"""The night's plan: fields, exposures in time order, and the conditions of each exposure.

Times are MJD on the TAI scale; the site is CTIO. Fields sit along the ecliptic near the
anti-solar point at local midnight, so they transit during the night and asteroids are
plentiful there. Sidereal time uses the IAU 1982 GMST polynomial in TAI (UT1 differs by
under a minute, which only shifts airmasses imperceptibly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import coordinates, time
from astropy import units as u

from shutterline.camera import layout, rawformat
from shutterline.simulate import config
from shutterline.solarsystem import orbits

__all__ = [
    "SITE_LAT_DEG",
    "ExposurePlan",
    "Field",
    "airmass",
    "make_fields",
    "plan_night",
    "transit_mjd",
]

SITE_LAT_DEG = -30.1652
SITE_LON_DEG = -70.8065
#: UTC of local midnight at CTIO as a fraction of a day.
_LOCAL_MIDNIGHT = 0.197
#: Revisit interval of one field during the night, days.
REVISIT_DAYS = 30.0 / 1440.0
#: Template visits are dithered by up to this radius, arcsec.
DITHER_ARCSEC = 30.0
FIRST_EXPNUM = 100001


@dataclass(frozen=True)
class Field:
    """A survey field: name and centre (degrees, ICRS)."""

    name: str
    ra: float
    dec: float


@dataclass(frozen=True)
class ExposurePlan:
    """One exposure of the night (all detectors), with its true observing conditions.

    ``role`` is ``bias``, ``flat``, ``template`` (earlier nights) or ``science``.
    ``mjd`` is the start of the exposure (TAI); ``zeropoint_mag`` the AB magnitude that gives
    1 electron per second (extinction included); ``sky_e_per_px`` the sky in electrons per
    pixel over the exposure; ``seeing_arcsec`` the PSF FWHM.
    """

    expnum: int
    role: str
    band: str
    mjd: float
    exptime: float
    field: str
    ra: float
    dec: float
    airmass: float
    seeing_arcsec: float
    zeropoint_mag: float
    sky_e_per_px: float

    @property
    def obstype(self) -> str:
        """The raw ``OBSTYPE`` value for this role."""
        return {"bias": rawformat.OBSTYPE_BIAS, "flat": rawformat.OBSTYPE_FLAT}.get(
            self.role, rawformat.OBSTYPE_SCIENCE
        )

    @property
    def mjd_mid(self) -> float:
        """Middle of the exposure, MJD (TAI): the time truth positions and fluxes refer to."""
        return self.mjd + self.exptime / 2.0 / 86400.0

    @property
    def njy_per_electron(self) -> float:
        """Flux in nJy of a source giving one electron over the whole exposure."""
        return float(10.0 ** (0.4 * (config.NJY_AB_ZERO_MAG - self.zeropoint_mag)) / self.exptime)


def _lst_deg(mjd: float | np.ndarray) -> np.ndarray:
    gmst = 280.46061837 + 360.98564736629 * (np.asarray(mjd) - 51544.5)
    return np.mod(gmst + SITE_LON_DEG, 360.0)


def transit_mjd(ra_deg: float, near_mjd: float) -> float:
    """The time (MJD) nearest ``near_mjd`` at which right ascension ``ra_deg`` transits."""
    dha = (ra_deg - float(_lst_deg(near_mjd)) + 180.0) % 360.0 - 180.0
    return near_mjd + dha / 360.98564736629


def airmass(ra_deg: float, dec_deg: float, mjd: float) -> float:
    """Plane-parallel airmass sec(z) at CTIO, at least 1."""
    ha = np.deg2rad(float(_lst_deg(mjd)) - ra_deg)
    lat, dec = np.deg2rad(SITE_LAT_DEG), np.deg2rad(dec_deg)
    cos_z = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    return float(max(1.0, 1.0 / max(cos_z, 0.05)))


def make_fields(cfg: config.SimConfig) -> list[Field]:
    """Fields 12 degrees apart along the ecliptic around the anti-solar point at midnight."""
    t = time.Time(cfg.night_mjd + _LOCAL_MIDNIGHT, format="mjd", scale="tai")
    with coordinates.solar_system_ephemeris.set("builtin"):
        sun = coordinates.get_body_barycentric("sun", t) - coordinates.get_body_barycentric(
            "earth", t
        )
    sun_ecl = sun.get_xyz().to_value(u.au) @ orbits.ECLIPTIC_TO_EQUATORIAL
    anti_lon = np.rad2deg(np.arctan2(sun_ecl[1], sun_ecl[0])) + 180.0
    fields = []
    for i in range(cfg.fields):
        lon = np.deg2rad(anti_lon + (i - (cfg.fields - 1) / 2.0) * 12.0)
        lat = np.deg2rad(3.0 * (-1) ** i)
        ecl = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
        eq = orbits.ECLIPTIC_TO_EQUATORIAL @ ecl
        ra = float(np.rad2deg(np.arctan2(eq[1], eq[0])) % 360.0)
        dec = float(np.rad2deg(np.arcsin(eq[2])))
        fields.append(Field(f"F{i + 1:02d}", round(ra, 6), round(dec, 6)))
    return fields


def _conditions(
    cfg: config.SimConfig,
    band: str,
    ra: float,
    dec: float,
    mjd: float,
    rng: np.random.Generator,
) -> tuple[float, float, float, float]:
    """(airmass, seeing FWHM arcsec, zero point mag, sky electrons per pixel) of a visit."""
    spec = config.BANDS[band]
    x = airmass(ra, dec, mjd + config.EXPTIME_S / 172800.0)
    seeing = float(rng.uniform(0.8, 2.0)) * cfg.seeing_scale
    zp = spec.zp_mag - spec.extinction * (x - 1.0) - float(rng.uniform(0.0, 0.05))
    sky_mag = spec.sky_mag - 0.2 * (x - 1.0) + float(rng.uniform(-0.15, 0.15))
    pixel_area = layout.CAMERA.pixel_scale_arcsec**2
    sky = config.EXPTIME_S * pixel_area * 10.0 ** (-0.4 * (sky_mag - spec.zp_mag))
    return round(x, 5), round(seeing, 4), round(zp, 5), round(float(sky), 3)


def _template_times(
    cfg: config.SimConfig, fields: list[Field], rng: np.random.Generator
) -> list[tuple[float, Field, str]]:
    """(mjd, field, band) of the template visits: earlier nights, near each field's transit."""
    out = []
    for j in range(cfg.template_visits):
        for b, band in enumerate(cfg.bands):
            night = cfg.night_mjd - 2.0 - 3.0 * j - b
            for fld in fields:
                t = transit_mjd(fld.ra, night + _LOCAL_MIDNIGHT) + rng.uniform(-0.03, 0.03)
                out.append((float(t), fld, band))
    return sorted(out, key=lambda item: (item[0], item[1].name))


def _science_times(cfg: config.SimConfig, fields: list[Field]) -> list[tuple[float, Field, str]]:
    """(mjd, field, band) of the night's visits: fields interleaved, each revisited every 30 min."""
    midnight = cfg.night_mjd + _LOCAL_MIDNIGHT
    start = midnight - cfg.visits * REVISIT_DAYS / 2.0
    out = []
    for k in range(cfg.visits):
        band = cfg.bands[k % len(cfg.bands)]
        for f, fld in enumerate(fields):
            out.append((start + (k + f / len(fields)) * REVISIT_DAYS, fld, band))
    return out


def _dither(fld: Field, rng: np.random.Generator) -> tuple[float, float]:
    radius = DITHER_ARCSEC / 3600.0 * np.sqrt(rng.uniform())
    angle = rng.uniform(0.0, 2.0 * np.pi)
    dec = fld.dec + radius * np.sin(angle)
    ra = fld.ra + radius * np.cos(angle) / np.cos(np.deg2rad(fld.dec))
    return round(float(ra) % 360.0, 7), round(float(dec), 7)


def _calibrations(cfg: config.SimConfig) -> list[tuple[str, str, float]]:
    """(role, band, mjd) of the afternoon's biases then dome flats, one minute apart."""
    items = [("bias", cfg.bands[0], 0.0)] * cfg.n_bias
    items += [("flat", band, 0.0) for band in cfg.bands for _ in range(cfg.n_flat)]
    afternoon = cfg.night_mjd + _LOCAL_MIDNIGHT - 0.33
    return [(role, band, afternoon + i / 1440.0) for i, (role, band, _) in enumerate(items)]


def plan_night(cfg: config.SimConfig, fields: list[Field]) -> list[ExposurePlan]:
    """Every exposure of the simulation in time order, with consecutive exposure numbers.

    Template visits (earlier nights) come first, then the afternoon's calibrations, then the
    night's science visits. Calibration exposures point at the zenith (airmass 1).
    """
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 11]))
    plans: list[ExposurePlan] = []
    for mjd, fld, band in _template_times(cfg, fields, rng):
        ra, dec = _dither(fld, rng)
        plans.append(_visit(cfg, len(plans), "template", band, mjd, fld, ra, dec, rng))
    for role, band, mjd in _calibrations(cfg):
        exptime = 0.0 if role == "bias" else config.FLAT_EXPTIME_S
        zenith_ra = round(float(_lst_deg(mjd)), 6)
        plans.append(
            ExposurePlan(
                FIRST_EXPNUM + len(plans),
                role,
                band,
                round(mjd, 8),
                exptime,
                "",
                zenith_ra,
                SITE_LAT_DEG,
                1.0,
                0.0,
                0.0,
                0.0,
            )
        )
    for mjd, fld, band in _science_times(cfg, fields):
        plans.append(_visit(cfg, len(plans), "science", band, mjd, fld, fld.ra, fld.dec, rng))
    return plans


def _visit(
    cfg: config.SimConfig,
    index: int,
    role: str,
    band: str,
    mjd: float,
    fld: Field,
    ra: float,
    dec: float,
    rng: np.random.Generator,
) -> ExposurePlan:
    x, seeing, zp, sky = _conditions(cfg, band, ra, dec, mjd, rng)
    return ExposurePlan(
        FIRST_EXPNUM + index,
        role,
        band,
        round(mjd, 8),
        config.EXPTIME_S,
        fld.name,
        ra,
        dec,
        x,
        seeing,
        zp,
        sky,
    )
