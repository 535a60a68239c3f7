"""Seeded synthetic inputs for the association, alert and benchmark code.

DIA source tables carry the columns the differencing stage produces; exposures hold
circular Gaussian point sources of known flux on Gaussian noise with a TAN WCS.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from shutterline.association import visitinfo
from shutterline.images import Exposure

__all__ = [
    "PIXEL_SCALE",
    "dia_table",
    "gaussian_psf",
    "make_exposure",
    "source_ids",
    "tan_wcs",
    "visit_info",
]

PIXEL_SCALE = 0.263  # arcsec / pixel
CENTRE = (150.0, 2.0)
SHAPE = (4096, 2048)


def tan_wcs(ra: float, dec: float, shape: tuple[int, int], scale: float = PIXEL_SCALE) -> WCS:
    """TAN WCS centred on ``(ra, dec)`` for a ``(ny, nx)`` grid, north up, east left."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    w.wcs.cd = np.array([[-scale / 3600.0, 0.0], [0.0, scale / 3600.0]])
    return w


def visit_info(
    visit: int,
    detector: int = 7,
    mjd: float = 60000.1,
    band: str = "r",
    centre: tuple[float, float] = CENTRE,
    shape: tuple[int, int] = SHAPE,
) -> visitinfo.VisitInfo:
    """A detector footprint of ``shape`` pixels centred on ``centre``."""
    wcs = tan_wcs(*centre, shape)
    ny, nx = shape
    ra, dec = wcs.all_pix2world(
        [-0.5, nx - 0.5, nx - 0.5, -0.5], [-0.5, -0.5, ny - 0.5, ny - 0.5], 0
    )
    return visitinfo.VisitInfo(
        visit=visit,
        detector=detector,
        band=band,
        mjd=mjd,
        corners=np.column_stack([ra, dec]),
        exposure_time=30.0,
    )


def source_ids(visit: int, detector: int, n: int) -> np.ndarray:
    """Ids laid out as the driver assigns them."""
    return (visit * 1000 + detector) * 100_000 + np.arange(n, dtype=np.int64)


def dia_table(
    ra: np.ndarray,
    dec: np.ndarray,
    visit: int,
    detector: int = 7,
    flux: np.ndarray | float = 2000.0,
    flux_err: float = 100.0,
    seed: int = 0,
) -> Table:
    """A DIA source table with the differencing stage's columns."""
    rng = np.random.default_rng(seed)
    n = len(ra)
    flux = np.broadcast_to(np.asarray(flux, float), (n,))
    t = Table()
    t["dia_source_id"] = source_ids(visit, detector, n)
    t["x"] = rng.uniform(0, 2048, n).astype(np.float32)
    t["y"] = rng.uniform(0, 4096, n).astype(np.float32)
    t["x_err"] = np.full(n, 0.05, np.float32)
    t["y_err"] = np.full(n, 0.05, np.float32)
    t["ra"] = np.asarray(ra, float)
    t["dec"] = np.asarray(dec, float)
    t["ra_err"] = np.full(n, 0.05 * PIXEL_SCALE / 3600.0)
    t["dec_err"] = np.full(n, 0.05 * PIXEL_SCALE / 3600.0)
    t["psf_flux"] = flux + rng.normal(0, flux_err, n)
    t["psf_flux_err"] = np.full(n, flux_err)
    t["ap_flux"] = flux + rng.normal(0, flux_err * 1.2, n)
    t["ap_flux_err"] = np.full(n, flux_err * 1.2)
    t["snr"] = t["psf_flux"] / flux_err
    t["is_negative"] = flux < 0
    t["is_dipole"] = np.zeros(n, bool)
    t["ixx"] = np.full(n, 0.4)
    t["iyy"] = np.full(n, 0.4)
    t["ixy"] = np.zeros(n)
    t["extendedness"] = np.zeros(n)
    t["reliability"] = np.full(n, 0.9)
    t["sci_flux"] = flux + 5000.0
    t["sci_flux_err"] = np.full(n, flux_err * 1.5)
    t["template_flux"] = np.full(n, 5000.0)
    t["template_flux_err"] = np.full(n, flux_err)
    t["trail_flag"] = np.zeros(n, bool)
    t["shape_flag"] = np.zeros(n, bool)
    for flag in ("bad", "cr", "sat", "edge", "interpolated", "suspect"):
        t[f"pixel_flags_{flag}"] = np.zeros(n, bool)
    t["bbox_size"] = np.full(n, 17, np.int32)
    return t


def gaussian_psf(sigma_px: float = 1.5, half: int = 7) -> np.ndarray:
    """``(2 half + 1, 2 half + 1)`` Gaussian PSF summing to 1."""
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    p = np.exp(-0.5 * (xx**2 + yy**2) / sigma_px**2)
    return (p / p.sum()).astype(np.float32)


def make_exposure(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    sigma_px: float = 1.5,
    noise: float = 10.0,
    njy_per_unit: float = 2.0,
    seed: int = 0,
    centre: tuple[float, float] = CENTRE,
) -> Exposure:
    """Gaussian point sources (``flux`` in image units) on white noise of ``noise``."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    image = rng.normal(0.0, noise, shape)
    for xi, yi, fi in zip(x, y, flux, strict=True):
        r2 = (xx - xi) ** 2 + (yy - yi) ** 2
        image += fi * np.exp(-0.5 * r2 / sigma_px**2) / (2 * np.pi * sigma_px**2)
    return Exposure(
        image=image.astype(np.float32),
        mask=np.zeros(shape, np.int32),
        variance=np.full(shape, noise**2, np.float32),
        wcs=tan_wcs(*centre, shape),
        psf=gaussian_psf(sigma_px),
        metadata={"NJY_PER_UNIT": njy_per_unit, "BUNIT": "electron", "VISIT": 1, "BAND": "r"},
    )
