"""Seeded synthetic science / template pairs for the differencing tests and benchmark.

Stars are circular Gaussians rendered analytically (pixel-centre sampling) so their true
positions and fluxes are known exactly; the science image is in electrons with
``NJY_PER_UNIT`` converting to nJy, the template patches are in nJy on their own grid.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from astropy.wcs import WCS

from shutterline.images import Exposure, MaskBit

__all__ = [
    "Field",
    "Pair",
    "gaussian_psf",
    "make_field",
    "make_pair",
    "make_science",
    "make_template_patches",
    "point_sigma_njy",
    "render",
    "tan_wcs",
]

SCI_SCALE = 0.263  # arcsec / pixel
TPL_SCALE = 0.2
FWHM_TO_SIGMA = 1.0 / 2.3548200450309493


def tan_wcs(
    ra: float, dec: float, shape: tuple[int, int], scale: float, rot_deg: float = 0.0
) -> WCS:
    """TAN WCS centred on ``(ra, dec)`` for a ``(ny, nx)`` grid of ``scale`` arcsec pixels."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    sc = scale / 3600.0
    w.wcs.cd = np.array([[-sc * c, sc * s], [sc * s, sc * c]])
    return w


def gaussian_psf(fwhm_px: float, size: int | None = None) -> np.ndarray:
    """``(k, k)`` float32 Gaussian PSF image (pixel-integrated like `render`), sum 1."""
    sigma = fwhm_px * FWHM_TO_SIGMA
    half = size // 2 if size else max(int(np.ceil(4.5 * sigma)), 3)
    p = render(
        (2 * half + 1, 2 * half + 1), np.array([half]), np.array([half]), np.ones(1), fwhm_px
    )
    return (p / p.sum()).astype(np.float32)


def render(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, flux: np.ndarray, fwhm_px: float
) -> np.ndarray:
    """``(ny, nx)`` float32 image of Gaussian point sources (integrated over pixels).

    Pixel values are integrals over the pixel of the profile (error functions), so the
    sum is the flux and the rendering is exact at any sampling.
    """
    from scipy.special import erf

    sigma = fwhm_px * FWHM_TO_SIGMA
    img = np.zeros(shape, np.float64)
    half = int(np.ceil(6 * sigma)) + 1
    s2 = np.sqrt(2.0) * sigma
    for xi, yi, fi in zip(x, y, flux, strict=True):
        x0, y0 = round(xi), round(yi)
        ylo, yhi = max(y0 - half, 0), min(y0 + half + 1, shape[0])
        xlo, xhi = max(x0 - half, 0), min(x0 + half + 1, shape[1])
        if ylo >= yhi or xlo >= xhi:
            continue
        ey = np.diff(erf((np.arange(ylo, yhi + 1) - 0.5 - yi) / s2)) / 2
        ex = np.diff(erf((np.arange(xlo, xhi + 1) - 0.5 - xi) / s2)) / 2
        img[ylo:yhi, xlo:xhi] += fi * np.outer(ey, ex)
    return img.astype(np.float32)


@dataclasses.dataclass
class Field:
    """Static stars (nJy) on the sky, plus the science pointing."""

    ra: np.ndarray
    dec: np.ndarray
    flux: np.ndarray
    wcs: WCS
    shape: tuple[int, int]


def make_field(
    rng: np.random.Generator,
    shape: tuple[int, int] = (1024, 512),
    n_stars: int = 300,
    rot_deg: float = 0.4,
    flux_range: tuple[float, float] = (2e3, 3e5),
) -> Field:
    """A star field (log-uniform fluxes in nJy) over a science detector of ``shape``."""
    wcs = tan_wcs(150.0, 2.0, shape, SCI_SCALE, rot_deg)
    x = rng.uniform(-20, shape[1] + 20, n_stars)
    y = rng.uniform(-20, shape[0] + 20, n_stars)
    ra, dec = wcs.all_pix2world(x, y, 0)
    lo, hi = np.log(flux_range[0]), np.log(flux_range[1])
    flux = np.exp(rng.uniform(lo, hi, n_stars))
    return Field(np.asarray(ra), np.asarray(dec), flux, wcs, shape)


def make_science(
    rng: np.random.Generator,
    field: Field,
    fwhm_px: float,
    *,
    extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    njy_per_electron: float = 2.0,
    sky_electrons: float = 400.0,
) -> Exposure:
    """Background-subtracted science exposure in electrons with Poisson + sky noise.

    ``extra`` = ``(x, y, flux_njy)`` point sources added in the science image only.
    """
    x, y = field.wcs.all_world2pix(field.ra, field.dec, 0)
    flux = field.flux
    if extra is not None:
        x, y, flux = (np.concatenate([a, b]) for a, b in zip((x, y, flux), extra, strict=True))
    model = render(field.shape, x, y, flux / njy_per_electron, fwhm_px)
    variance = (sky_electrons + np.clip(model, 0, None)).astype(np.float32)
    image = (model + rng.normal(size=field.shape) * np.sqrt(variance)).astype(np.float32)
    return Exposure(
        image=image,
        mask=np.zeros(field.shape, np.int32),
        variance=variance,
        wcs=field.wcs,
        psf=gaussian_psf(fwhm_px),
        metadata={"BUNIT": "electron", "NJY_PER_UNIT": njy_per_electron, "PSF_FWHM": fwhm_px},
    )


def make_template_patches(
    rng: np.random.Generator,
    field: Field,
    fwhm_arcsec: float,
    *,
    noise_njy: float = 8.0,
    n_patches: int = 2,
    overlap: int = 40,
) -> list[Exposure]:
    """Template coadd patches (nJy, 0.2 arcsec pixels) tiling the field along y, overlapping.

    The patches sit on one tangent plane offset from the science pointing, with padding
    around the detector; pixels outside a border are ``NO_DATA`` like a real coadd's.
    """
    ny, nx = field.shape
    full = (int(ny * SCI_SCALE / TPL_SCALE) + 80, int(nx * SCI_SCALE / TPL_SCALE) + 80)
    wcs = tan_wcs(150.003, 1.998, full, TPL_SCALE, 0.0)
    x, y = wcs.all_world2pix(field.ra, field.dec, 0)
    fwhm_px = fwhm_arcsec / TPL_SCALE
    model = render(full, x, y, field.flux, fwhm_px)
    var = np.full(full, noise_njy**2, np.float32) + np.clip(model, 0, None) * 0.05
    image = (model + rng.normal(size=full) * np.sqrt(var)).astype(np.float32)
    edges = np.linspace(0, full[0], n_patches + 1).astype(int)
    patches = []
    for lo, hi in itertools.pairwise(edges):
        lo, hi = max(lo - overlap // 2, 0), min(hi + overlap // 2, full[0])
        pw = wcs.deepcopy()
        pw.wcs.crpix = [wcs.wcs.crpix[0], wcs.wcs.crpix[1] - lo]
        mask = np.zeros((hi - lo, full[1]), np.int32)
        mask[:, :3] = mask[:, -3:] = int(MaskBit.NO_DATA)
        patches.append(
            Exposure(
                image=np.where(mask == 0, image[lo:hi], 0).astype(np.float32),
                mask=mask,
                variance=np.where(mask == 0, var[lo:hi], 0).astype(np.float32),
                wcs=pw,
                psf=gaussian_psf(fwhm_px),
                metadata={"BUNIT": "nJy", "NJY_PER_UNIT": 1.0, "PSF_FWHM": fwhm_px},
            )
        )
    return patches


@dataclasses.dataclass
class Pair:
    """A science exposure, its warped template and the injected sources (pixels, nJy)."""

    science: Exposure
    template: Exposure
    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray


def point_sigma_njy(fwhm_px: float, pixel_sigma_njy: float) -> float:
    """PSF-flux noise (nJy) of a point source on sky of ``pixel_sigma_njy`` per pixel."""
    sigma = fwhm_px * FWHM_TO_SIGMA
    return float(pixel_sigma_njy * np.sqrt(4 * np.pi * sigma**2))


def make_pair(
    seed: int,
    fwhm_sci: float,
    fwhm_tpl: float,
    *,
    shape: tuple[int, int] = (512, 384),
    spacing: int = 64,
    snr: float = 10.0,
    stars_per_mpix: float = 600.0,
) -> Pair:
    """Science (FWHM ``fwhm_sci`` arcsec) with sources injected on a grid at ``snr`` (science
    sky noise only), and the template (``fwhm_tpl`` arcsec) warped onto the science grid."""
    from shutterline.differencing import warp

    rng = np.random.default_rng(seed)
    n_stars = int(stars_per_mpix * shape[0] * shape[1] / 1e6)
    field = make_field(rng, shape, n_stars=n_stars)
    gy, gx = np.meshgrid(
        np.arange(spacing // 2, shape[0] - 20, spacing),
        np.arange(spacing // 2, shape[1] - 20, spacing),
        indexing="ij",
    )
    x = gx.ravel() + rng.uniform(-0.5, 0.5, gx.size)
    y = gy.ravel() + rng.uniform(-0.5, 0.5, gx.size)
    # Keep injections off bright stars, whose photon noise would lower their SNR below `snr`.
    sx, sy = field.wcs.all_world2pix(field.ra, field.dec, 0)
    bright = field.flux > 2e4
    dist = np.hypot(x[:, None] - sx[bright], y[:, None] - sy[bright])
    clear = dist.min(axis=1, initial=np.inf) > 10 if bright.any() else np.ones(x.size, bool)
    x, y = x[clear], y[clear]
    fwhm_px = fwhm_sci / SCI_SCALE
    flux = np.full(x.size, snr * point_sigma_njy(fwhm_px, 40.0))
    science = make_science(rng, field, fwhm_px, extra=(x, y, flux))
    patches = make_template_patches(rng, field, fwhm_tpl)
    template = warp.warp_patches(patches, field.wcs, shape)
    return Pair(science, template, x, y, flux)
