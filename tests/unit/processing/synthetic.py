"""Seeded synthetic post-ISR exposures with known truth, for the processing tests.

Stars are placed at known (ra, dec) and rendered through a true TAN WCS; the exposure carries
a perturbed WCS (shift plus a small rotation), as the raw WCS would. The image is in
electrons (gain 1), with a sky gradient, Poisson noise, a few bad columns, cosmic rays,
saturated stars with bleed trails and galaxies. Profiles are sampled at pixel centres and
normalised on their stamp, so ``flux_e`` is exactly the rendered flux of each star.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS, Sip

from shutterline.images import Exposure, MaskBit

__all__ = ["Scene", "SceneConfig", "make_scene", "tan_wcs"]

PIXEL_SCALE = 0.263  # arcsec per pixel


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """What to render; every default is a DECam-like detector at 1/4 size for speed."""

    shape: tuple[int, int] = (2048, 1024)  # (ny, nx)
    n_stars: int = 500
    n_galaxies: int = 80
    fwhm_arcsec: float = 1.0
    moffat_beta: float | None = 3.5  # None: Gaussian
    fwhm_gradient: float = 0.0  # fractional FWHM change from centre to the top/bottom edge
    ellipticity: float = 0.0  # e1 of the PSF (stretch along x)
    sky: float = 800.0  # electrons
    gradient: tuple[float, float] = (0.02, 0.04)  # electrons per pixel along (x, y)
    read_noise: float = 6.0
    saturation: float = 60000.0
    n_bad_columns: int = 3
    n_cosmics: int = 40
    wcs_error_arcsec: float = 2.0
    rotation_deg: float = 0.004
    distortion_px: float = 0.0  # quadratic SIP distortion at the chip corners (true WCS only)
    njy_per_unit: float = 0.8
    ref_flux_err: float = 0.01  # fractional error of the reference fluxes
    band: str = "r"
    seed: int = 0


@dataclasses.dataclass
class Scene:
    """A rendered exposure and its truth."""

    exposure: Exposure
    true_wcs: WCS
    stars: Table  # id, ra, dec, x, y, flux_e, flux_njy, saturated
    refcat: Table
    background: np.ndarray  # (ny, nx) float32 true sky, electrons
    config: SceneConfig


def tan_wcs(
    shape: tuple[int, int], ra: float, dec: float, rot_deg: float = 0.0, distortion: float = 0.0
) -> WCS:
    """A TAN WCS with CRPIX at the centre of ``shape`` (``(ny, nx)``), north up, east left.

    With ``distortion`` (pixels) it is TAN-SIP, a radial-like quadratic that moves the
    corners by about that much.
    """
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [shape[1] / 2.0 + 0.5, shape[0] / 2.0 + 0.5]
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    scale = PIXEL_SCALE / 3600.0
    wcs.wcs.cd = scale * np.array([[-c, s], [s, c]])
    if distortion:
        k = distortion / float(np.hypot(shape[0], shape[1]) / 2) ** 2
        a, b = np.zeros((3, 3)), np.zeros((3, 3))
        a[2, 0], a[0, 2], b[1, 1] = k, 0.5 * k, 0.8 * k
        wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    return wcs


def _profile(
    dx: np.ndarray, dy: np.ndarray, fwhm: float, beta: float | None, e1: float
) -> np.ndarray:
    # An e1 stretch: x scaled down, y up, area preserved.
    qx, qy = np.sqrt(1.0 - e1), np.sqrt(1.0 + e1)
    r2 = (dx * qx) ** 2 + (dy * qy) ** 2
    if beta is None:
        sigma = fwhm / 2.3548
        return np.exp(-0.5 * r2 / sigma**2)
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    return (1.0 + r2 / alpha**2) ** (-beta)


def _stamp(
    x: float, y: float, shape: tuple[int, int], half: int
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    ix, iy = round(x), round(y)
    y0, y1 = max(iy - half, 0), min(iy + half + 1, shape[0])
    x0, x1 = max(ix - half, 0), min(ix + half + 1, shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return slice(y0, y1), slice(x0, x1), xx - x, yy - y


def _fwhm_at(cfg: SceneConfig, y: float) -> float:
    v = (y - (cfg.shape[0] - 1) / 2.0) / (cfg.shape[0] / 2.0)
    return cfg.fwhm_arcsec / PIXEL_SCALE * (1.0 + cfg.fwhm_gradient * v)


def _render_stars(
    model: np.ndarray, x: np.ndarray, y: np.ndarray, flux: np.ndarray, cfg: SceneConfig
) -> None:
    for xi, yi, fi in zip(x, y, flux, strict=True):
        fwhm = _fwhm_at(cfg, yi)
        half = int(np.ceil(6.0 * fwhm))
        # Normalise on the full (unclipped) stamp so stars at the edge lose flux honestly.
        gy, gx = np.mgrid[-half : half + 1, -half : half + 1]
        fx, fy = xi - round(xi), yi - round(yi)
        norm = _profile(gx - fx, gy - fy, fwhm, cfg.moffat_beta, cfg.ellipticity).sum()
        st = _stamp(xi, yi, model.shape, half)
        if st is not None:
            sy, sx, dx, dy = st
            model[sy, sx] += fi / norm * _profile(dx, dy, fwhm, cfg.moffat_beta, cfg.ellipticity)


def _render_galaxies(model: np.ndarray, rng: np.random.Generator, cfg: SceneConfig) -> None:
    ny, nx = cfg.shape
    for _ in range(cfg.n_galaxies):
        x, y = rng.uniform(0, nx), rng.uniform(0, ny)
        flux = 10 ** rng.uniform(3.3, 5.0)
        sigma_psf = _fwhm_at(cfg, y) / 2.3548
        sig_a = np.hypot(sigma_psf, rng.uniform(2.0, 5.0))
        sig_b = np.hypot(sigma_psf, rng.uniform(1.0, 2.0))
        theta = rng.uniform(0, np.pi)
        st = _stamp(x, y, cfg.shape, int(6 * sig_a))
        if st is None:
            continue
        sy, sx, dx, dy = st
        u = dx * np.cos(theta) + dy * np.sin(theta)
        w = -dx * np.sin(theta) + dy * np.cos(theta)
        prof = np.exp(-0.5 * ((u / sig_a) ** 2 + (w / sig_b) ** 2))
        model[sy, sx] += flux * prof / (2 * np.pi * sig_a * sig_b)


def _defects(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cfg: SceneConfig
) -> None:
    ny, nx = cfg.shape
    sat = image >= cfg.saturation
    image[sat] = cfg.saturation
    mask[sat] |= int(MaskBit.SAT)
    # Bleed trails: the saturated columns run up and down in proportion to the excess.
    for col in np.unique(np.nonzero(sat)[1]):
        rows = np.nonzero(sat[:, col])[0]
        extra = rows.size * 2
        lo, hi = max(rows.min() - extra, 0), min(rows.max() + extra + 1, ny)
        image[lo:hi, col] = cfg.saturation
        mask[lo:hi, col] |= int(MaskBit.SAT)
    for col in rng.choice(nx, cfg.n_bad_columns, replace=False):
        image[:, col] = rng.choice([0.0, 5.0 * cfg.saturation])
        mask[:, col] |= int(MaskBit.BAD)
    cy, cx = rng.integers(0, ny, cfg.n_cosmics), rng.integers(0, nx - 2, cfg.n_cosmics)
    for dx in range(2):
        image[cy, cx + dx] += rng.uniform(2000, 20000, cfg.n_cosmics)
        mask[cy, cx + dx] |= int(MaskBit.CR)


def _star_catalogue(rng: np.random.Generator, cfg: SceneConfig, wcs: WCS) -> Table:
    ny, nx = cfg.shape
    # Stars also just off the detector, so the refcat covers more than the image.
    x = rng.uniform(-30, nx + 30, cfg.n_stars)
    y = rng.uniform(-30, ny + 30, cfg.n_stars)
    # dN/dlogF ~ F^-0.6: many faint, few bright; brightest saturate.
    u = rng.uniform(0, 1, cfg.n_stars)
    fmin, fmax, a = 800.0, 3.0e6, 0.6
    flux = (fmin**-a - u * (fmin**-a - fmax**-a)) ** (-1.0 / a)
    ra, dec = wcs.all_pix2world(x, y, 0)
    return Table(
        {
            "id": np.arange(cfg.n_stars),
            "ra": ra,
            "dec": dec,
            "x": x,
            "y": y,
            "flux_e": flux,
            "flux_njy": flux * cfg.njy_per_unit,
        }
    )


def _refcat(stars: Table, rng: np.random.Generator, cfg: SceneConfig) -> Table:
    err = cfg.ref_flux_err * stars["flux_njy"]
    flux = stars["flux_njy"] + rng.normal(0, 1, len(stars)) * err
    return Table(
        {
            "id": stars["id"],
            "ra": stars["ra"],
            "dec": stars["dec"],
            f"{cfg.band}_flux": flux,
            f"{cfg.band}_fluxErr": err,
        }
    )


def _perturbed_wcs(wcs: WCS, rng: np.random.Generator, cfg: SceneConfig) -> WCS:
    # The raw WCS is plain TAN: whatever distortion the true one has is for the fit to find.
    bad = tan_wcs(cfg.shape, *wcs.wcs.crval)
    bad.wcs.cd = wcs.wcs.cd
    ang = rng.uniform(0, 2 * np.pi)
    dra = cfg.wcs_error_arcsec * np.cos(ang) / 3600.0 / np.cos(np.radians(wcs.wcs.crval[1]))
    ddec = cfg.wcs_error_arcsec * np.sin(ang) / 3600.0
    bad.wcs.crval = [wcs.wcs.crval[0] + dra, wcs.wcs.crval[1] + ddec]
    t = np.radians(cfg.rotation_deg * rng.choice([-1.0, 1.0]))
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    bad.wcs.cd = wcs.wcs.cd @ rot
    return bad


def make_scene(cfg: SceneConfig | None = None) -> Scene:
    """Render a post-ISR exposure following ``cfg`` (seeded) and return it with its truth."""
    cfg = cfg or SceneConfig()
    rng = np.random.default_rng(cfg.seed)
    ny, nx = cfg.shape
    ra0, dec0 = 150.0 + rng.uniform(-1, 1), 2.0 + rng.uniform(-1, 1)
    wcs = tan_wcs(cfg.shape, ra0, dec0, 0.3, cfg.distortion_px)
    stars = _star_catalogue(rng, cfg, wcs)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    background = cfg.sky + cfg.gradient[0] * (xx - nx / 2) + cfg.gradient[1] * (yy - ny / 2)
    model = np.zeros(cfg.shape, np.float64)
    _render_stars(model, stars["x"], stars["y"], stars["flux_e"], cfg)
    _render_galaxies(model, rng, cfg)
    model += background
    variance = (model + cfg.read_noise**2).astype(np.float32)
    image = (model + rng.standard_normal(cfg.shape) * np.sqrt(variance)).astype(np.float32)
    mask = np.zeros(cfg.shape, np.int32)
    _defects(image, mask, rng, cfg)
    ix = np.clip(np.round(stars["x"]).astype(int), 0, nx - 1)
    iy = np.clip(np.round(stars["y"]).astype(int), 0, ny - 1)
    stars["saturated"] = (mask[iy, ix] & int(MaskBit.SAT)) != 0
    metadata = {
        "VISIT": 1234,
        "DETECTOR": 7,
        "BAND": cfg.band,
        "MJD": 60000.1,
        "EXPTIME": 30.0,
        "BUNIT": "electron",
    }
    exposure = Exposure(
        image=image,
        mask=mask,
        variance=variance,
        wcs=_perturbed_wcs(wcs, rng, cfg),
        metadata=metadata,
    )
    return Scene(exposure, wcs, stars, _refcat(stars, rng, cfg), background.astype(np.float32), cfg)
