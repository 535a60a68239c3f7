"""The sky of a field: stars, galaxies, variable stars and transients, with their light curves.

A catalog is an astropy Table, one row per source:

``id`` (int64), ``kind`` (static | variable | transient), ``extended`` (bool, galaxies),
``ra``, ``dec`` (degrees), ``flux_g``, ``flux_r``, ``flux_i`` (nJy: mean flux of a static or
variable source, plateau flux of a transient), ``sigma_x``, ``sigma_y`` (arcsec: Gaussian
galaxy size along the detector's x and y axes; 0 for point sources), ``amp`` (fractional
amplitude of a variable), ``period`` (days), ``phase`` (radians), ``t_on`` (MJD a transient
appears; -inf otherwise).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from astropy import wcs as fitswcs
from astropy.table import Table, vstack

from shutterline.camera import layout
from shutterline.simulate import config, schedule

__all__ = ["field_bounds", "flux_at", "make_field_catalog"]

FloatArray = npt.NDArray[np.float64]
#: Ids are unique over the night: field index times this, plus a running number.
ID_STRIDE = 1_000_000
#: A transient rises over this many days after ``t_on``, then fades 0.5 mag per day.
RISE_DAYS = 0.02
_MARGIN_ARCSEC = 90.0


def field_bounds(cfg: config.SimConfig) -> tuple[float, float, float, float]:
    """Tangent-plane box ``(xi0, xi1, eta0, eta1)`` in degrees covering all simulated detectors.

    Includes the dither radius and a margin, so a source near a detector edge is simulated
    whatever the pointing.
    """
    sx, sy = cfg.scale
    scale = layout.CAMERA.pixel_scale_arcsec / 3600.0
    xis, etas = [], []
    for ccd in cfg.ccdnums:
        spec = layout.CAMERA.detector(ccd)
        fx, fy = spec.offset_x * sy, spec.offset_y * sx
        xis += [-(fx - cfg.ny / 2) * scale, -(fx + cfg.ny / 2) * scale]
        etas += [(fy - cfg.nx / 2) * scale, (fy + cfg.nx / 2) * scale]
    pad = (_MARGIN_ARCSEC + schedule.DITHER_ARCSEC) / 3600.0
    return min(xis) - pad, max(xis) + pad, min(etas) - pad, max(etas) + pad


def _power_law_mags(
    rng: np.random.Generator, n: int, bright: float, faint: float, slope: float
) -> FloatArray:
    """Magnitudes with dN/dm proportional to 10^(slope m) between ``bright`` and ``faint``."""
    lo = 10.0 ** (slope * (bright - faint))
    return faint + np.log10(lo + (1.0 - lo) * rng.uniform(size=n)) / slope


def _mag_to_njy(mag: FloatArray) -> FloatArray:
    return np.asarray(10.0 ** (-0.4 * (mag - config.NJY_AB_ZERO_MAG)), dtype=float)


def _base_table(
    n: int, kind: str, ids: npt.NDArray[np.int64], rmag: FloatArray, gr: FloatArray, ri: FloatArray
) -> Table:
    t = Table()
    t["id"] = ids
    t["kind"] = np.full(n, kind, dtype="U9")
    t["extended"] = np.zeros(n, dtype=bool)
    t["flux_g"] = _mag_to_njy(rmag + gr)
    t["flux_r"] = _mag_to_njy(rmag)
    t["flux_i"] = _mag_to_njy(rmag - ri)
    for name in ("sigma_x", "sigma_y", "amp", "period", "phase"):
        t[name] = np.zeros(n)
    t["t_on"] = np.full(n, -np.inf)
    return t


def _stars(
    rng: np.random.Generator,
    n: int,
    bright: float,
    faint: float,
    slope: float,
    kind: str,
    ids: npt.NDArray[np.int64],
) -> Table:
    rmag = _power_law_mags(rng, n, bright, faint, slope)
    gr = rng.uniform(0.2, 1.5, n)
    return _base_table(n, kind, ids, rmag, gr, 0.1 + 0.4 * gr + rng.normal(0, 0.05, n))


def _galaxies(rng: np.random.Generator, n: int, ids: npt.NDArray[np.int64]) -> Table:
    rmag = _power_law_mags(rng, n, 18.0, 25.5, 0.33)
    t = _base_table(n, "static", ids, rmag, rng.uniform(0.3, 1.2, n), rng.uniform(0.1, 0.6, n))
    t["extended"] = True
    # Brighter galaxies are bigger; a Gaussian's half-light radius is 1.177 sigma.
    r_half = (0.35 + 1.2 * 10.0 ** (-0.2 * (rmag - 19.0))) * rng.uniform(0.7, 1.3, n)
    q = rng.uniform(0.4, 1.0, n)
    long_x = rng.uniform(size=n) < 0.5
    sigma = r_half / 1.1774
    t["sigma_x"] = np.where(long_x, sigma / np.sqrt(q), sigma * np.sqrt(q))
    t["sigma_y"] = np.where(long_x, sigma * np.sqrt(q), sigma / np.sqrt(q))
    return t


def _variables(rng: np.random.Generator, n: int, ids: npt.NDArray[np.int64]) -> Table:
    t = _stars(rng, n, 17.0, 22.5, 0.25, "variable", ids)
    # Amplitudes from 1% to 40% give difference-image SNRs from about 1 to several hundred.
    t["amp"] = 10.0 ** rng.uniform(-2.0, np.log10(0.4), n)
    t["period"] = 10.0 ** rng.uniform(-1.0, 0.5, n)
    t["phase"] = rng.uniform(0.0, 2.0 * np.pi, n)
    return t


def _transients(
    rng: np.random.Generator,
    n: int,
    ids: npt.NDArray[np.int64],
    night_start: float,
    night_end: float,
) -> Table:
    rmag = rng.uniform(18.5, 23.5, n)
    t = _base_table(n, "transient", ids, rmag, rng.uniform(-0.3, 0.6, n), rng.uniform(-0.2, 0.4, n))
    # Some appear before the first visit of the night (after the templates), most during it.
    t["t_on"] = rng.uniform(night_start - 0.1, night_end - 0.02, n)
    return t


def make_field_catalog(
    cfg: config.SimConfig, index: int, fld: schedule.Field, night: tuple[float, float]
) -> Table:
    """The sources of one field (see the module docstring for the columns).

    ``night`` is ``(first, last)`` MJD of the night's science visits, to time transients.
    Deterministic for ``(cfg.seed, index)``.
    """
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 21, index]))
    xi0, xi1, eta0, eta1 = field_bounds(cfg)
    area = (xi1 - xi0) * (eta1 - eta0)
    counts = [
        rng.poisson(d * area)
        for d in (cfg.star_density, cfg.galaxy_density, cfg.variable_density, cfg.transient_density)
    ]
    starts = np.cumsum([0, *counts])
    ids = [index * ID_STRIDE + 1 + np.arange(starts[k], starts[k + 1]) for k in range(4)]
    parts = [
        _stars(rng, counts[0], 12.0, 25.5, 0.2, "static", ids[0]),
        _galaxies(rng, counts[1], ids[1]),
        _variables(rng, counts[2], ids[2]),
        _transients(rng, counts[3], ids[3], *night),
    ]
    cat = vstack(parts, metadata_conflicts="silent")
    xi = rng.uniform(xi0, xi1, len(cat))
    eta = rng.uniform(eta0, eta1, len(cat))
    _host_some_transients(cat, xi, eta, rng)
    cat["ra"], cat["dec"] = _deproject(fld, xi, eta)
    return cat


def _host_some_transients(
    cat: Table, xi: FloatArray, eta: FloatArray, rng: np.random.Generator
) -> None:
    """Move half the transients next to a galaxy (0.3 to 1.5 arcsec from its centre)."""
    hosts = np.flatnonzero(np.asarray(cat["extended"]) & (np.asarray(cat["flux_r"]) > 3e3))
    trans = np.flatnonzero(np.asarray(cat["kind"]) == "transient")
    if len(hosts) == 0 or len(trans) == 0:
        return
    hosted = trans[rng.uniform(size=len(trans)) < 0.5]
    pick = rng.choice(hosts, size=len(hosted))
    offset = rng.uniform(0.3, 1.5, len(hosted)) / 3600.0
    angle = rng.uniform(0.0, 2.0 * np.pi, len(hosted))
    xi[hosted] = xi[pick] + offset * np.cos(angle)
    eta[hosted] = eta[pick] + offset * np.sin(angle)


def _deproject(
    fld: schedule.Field, xi: FloatArray, eta: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Sky positions (degrees) of tangent-plane offsets (degrees) about the field centre."""
    w = fitswcs.WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [fld.ra, fld.dec]
    w.wcs.crpix = [1.0, 1.0]
    w.wcs.cdelt = [1.0, 1.0]
    w.wcs.set()
    ra, dec = w.wcs_pix2world(xi, eta, 0)
    return np.asarray(ra) % 360.0, np.asarray(dec)


def flux_at(cat: Table, band: str, mjd: float) -> FloatArray:
    """Flux in nJy of every source of ``cat`` in ``band`` at time ``mjd`` (TAI), shape ``(n,)``.

    Variables: ``mean * (1 + amp sin(2 pi mjd / period + phase))``. Transients: zero before
    ``t_on``, a linear rise over ``RISE_DAYS``, then a fade of 0.5 mag per day.
    """
    base = np.asarray(cat[f"flux_{band}"], dtype=float)
    amp = np.asarray(cat["amp"], dtype=float)
    period = np.where(amp > 0, np.asarray(cat["period"], dtype=float), 1.0)
    wave = 1.0 + amp * np.sin(2.0 * np.pi * mjd / period + np.asarray(cat["phase"], dtype=float))
    age = mjd - np.asarray(cat["t_on"], dtype=float)
    finite = np.isfinite(age)
    age = np.where(finite, age, 1.0)
    light = np.where(
        age < 0.0,
        0.0,
        np.minimum(age / RISE_DAYS, 1.0) * 10.0 ** (-0.2 * np.maximum(age - RISE_DAYS, 0.0)),
    )
    return np.asarray(base * wave * np.where(finite, light, 1.0), dtype=float)
