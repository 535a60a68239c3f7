"""Image quality across a detector: PSF FWHM and ellipticity of its stars, as a map.

Each star's shape is its adaptive second moments (a Gaussian weight iterated until it
matches the star, as HSM and the LSST pipelines do), measured on the calibrated image
itself, not taken from the prompt pipeline's PSF model. The size is the determinant radius,
reported as a FWHM (``2.3548 det(M)^(1/4)``); the ellipticity is the distortion
``|e| = sqrt((Ixx - Iyy)^2 + (2 Ixy)^2) / (Ixx + Iyy)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.table import Table

from shutterline.images import mask as mask_mod
from shutterline.processing import detection, stamps

__all__ = ["PsfMap", "adaptive_moments", "measure_psf_map", "psf_stars"]

_FWHM_PER_SIGMA = 2.3548200450309493
_FLAG = detection.SourceFlag
#: Source flags that spoil a star's shape.
_SPOILED = int(
    _FLAG.BLENDED
    | _FLAG.TRUNCATED
    | _FLAG.SATURATED
    | _FLAG.MASKED_CORE
    | _FLAG.EDGE
    | _FLAG.CENTROID_FAILED
)
_BAD_PIXELS = int(mask_mod.MaskBit.BAD | mask_mod.MaskBit.SAT | mask_mod.MaskBit.CR)


@dataclasses.dataclass(frozen=True)
class PsfMap:
    """PSF size and shape of one detector, overall and per cell.

    Attributes
    ----------
    fwhm_px : float
        Median FWHM of the stars, pixels (NaN without stars).
    ellipticity : float
        Median distortion ``|e|`` of the stars.
    e1, e2 : float
        Median components ``(Ixx - Iyy) / T`` and ``2 Ixy / T``.
    n_stars : int
        Stars measured.
    cell_fwhm_px, cell_ellipticity : numpy.ndarray
        ``(rows, cols)`` medians per cell (NaN for a cell without stars), rows along ``y``.
    cell_count : numpy.ndarray
        ``(rows, cols)`` int stars per cell.
    """

    fwhm_px: float
    ellipticity: float
    e1: float
    e2: float
    n_stars: int
    cell_fwhm_px: np.ndarray
    cell_ellipticity: np.ndarray
    cell_count: np.ndarray


def psf_stars(src: Table, min_snr: float = 30.0) -> np.ndarray:
    """``(n,)`` bool: isolated, unsaturated point sources bright enough for a shape."""
    flags = np.asarray(src["flags"]).astype(np.int64)
    ext = np.asarray(src["extendedness"], np.float64)
    snr = np.asarray(src["snr"], np.float64)
    ok = ((flags & _SPOILED) == 0) & (snr >= min_snr) & ~(ext > 0.5)
    if "is_saturated" in src.colnames:
        ok &= ~np.asarray(src["is_saturated"], bool)
    return np.asarray(ok)


def adaptive_moments(
    values: np.ndarray, usable: np.ndarray, sigma0: float, iterations: int = 30
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Adaptive second moments of ``(n, k, k)`` stamps centred near their middle pixel.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n, k, k)`` background-subtracted pixel values, odd ``k``.
    usable : numpy.ndarray
        ``(n, k, k)`` bool, False for pixels to ignore (masked, off the image).
    sigma0 : float
        Starting Gaussian weight width, pixels.

    Returns
    -------
    ixx, iyy, ixy : numpy.ndarray
        ``(n,)`` moments of the matched Gaussian, pixels^2.
    ok : numpy.ndarray
        ``(n,)`` bool, False where the iteration failed (no flux, not positive definite).
    """
    n, k = values.shape[0], values.shape[1]
    grid = np.arange(k, dtype=np.float64) - k // 2
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    img = np.where(usable, values, 0.0).astype(np.float64)
    xc, yc = np.zeros(n), np.zeros(n)
    mxx, myy, mxy = np.full(n, sigma0**2), np.full(n, sigma0**2), np.zeros(n)
    ok = np.ones(n, bool)
    for _ in range(iterations):
        det = mxx * myy - mxy**2
        dx, dy = gx[None] - xc[:, None, None], gy[None] - yc[:, None, None]
        q = (myy[:, None, None] * dx**2 - 2 * mxy[:, None, None] * dx * dy) + mxx[
            :, None, None
        ] * dy**2
        w = img * np.exp(-0.5 * q / np.where(det > 0, det, 1.0)[:, None, None])
        s0 = w.sum(axis=(1, 2))
        ok &= (s0 > 0) & (det > 0)
        s0 = np.where(s0 > 0, s0, 1.0)
        mx, my = (w * dx).sum(axis=(1, 2)) / s0, (w * dy).sum(axis=(1, 2)) / s0
        qxx = (w * (dx - mx[:, None, None]) ** 2).sum(axis=(1, 2)) / s0
        qyy = (w * (dy - my[:, None, None]) ** 2).sum(axis=(1, 2)) / s0
        qxy = (w * (dx - mx[:, None, None]) * (dy - my[:, None, None])).sum(axis=(1, 2)) / s0
        # A Gaussian weighted by the Gaussian it matches has half its moments.
        mxx, myy, mxy = 2 * qxx, 2 * qyy, 2 * qxy
        xc, yc = np.clip(xc + mx, -2, 2), np.clip(yc + my, -2, 2)
    ok &= (mxx > 0) & (myy > 0) & (mxx * myy - mxy**2 > 0)
    ok &= (mxx < (k / 2) ** 2) & (myy < (k / 2) ** 2)
    return mxx, myy, mxy, ok


def _cell_medians(
    x: np.ndarray, y: np.ndarray, values: np.ndarray, shape: tuple[int, int], grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = grid
    r = np.clip((y / shape[0] * rows).astype(int), 0, rows - 1)
    c = np.clip((x / shape[1] * cols).astype(int), 0, cols - 1)
    medians = np.full(grid, np.nan)
    counts = np.zeros(grid, np.int64)
    for i in range(rows):
        for j in range(cols):
            sel = (r == i) & (c == j)
            counts[i, j] = int(sel.sum())
            if counts[i, j]:
                medians[i, j] = float(np.median(values[sel]))
    return medians, counts


def measure_psf_map(
    image: np.ndarray,
    mask: np.ndarray,
    src: Table,
    fwhm_guess_px: float,
    grid: tuple[int, int] = (4, 2),
) -> PsfMap:
    """Measure the PSF of the stars of ``src`` on ``image`` and map it on a ``grid``.

    Parameters
    ----------
    image, mask : numpy.ndarray
        ``(ny, nx)`` background-subtracted image and its `MaskBit` plane.
    src : astropy.table.Table
        The source catalogue (``x, y, flags, snr, extendedness``).
    fwhm_guess_px : float
        A first guess of the FWHM (sets the stamp size and the starting weight).
    grid : tuple of int
        ``(rows, cols)`` cells of the map, rows along ``y``.
    """
    use = psf_stars(src)
    x, y = np.asarray(src["x"], np.float64)[use], np.asarray(src["y"], np.float64)[use]
    guess = fwhm_guess_px if np.isfinite(fwhm_guess_px) and fwhm_guess_px > 0 else 4.0
    half = int(np.ceil(2.5 * guess))
    xi, yi = stamps.nearest_pixel(x), stamps.nearest_pixel(y)
    values, inside = stamps.cutouts(image, xi, yi, half)
    bits, _ = stamps.cutouts(mask, xi, yi, half)
    usable = inside & ((bits & _BAD_PIXELS) == 0)
    ixx, iyy, ixy, ok = adaptive_moments(values, usable, guess / _FWHM_PER_SIGMA)
    trace = ixx + iyy
    det = np.clip(ixx * iyy - ixy**2, 0, None)
    fwhm = _FWHM_PER_SIGMA * det**0.25
    with np.errstate(invalid="ignore", divide="ignore"):
        e1, e2 = (ixx - iyy) / trace, 2 * ixy / trace
    ell = np.hypot(e1, e2)
    x, y, fwhm, ell, e1, e2 = (a[ok] for a in (x, y, fwhm, ell, e1, e2))
    shape = (int(image.shape[0]), int(image.shape[1]))
    cell_fwhm, counts = _cell_medians(x, y, fwhm, shape, grid)
    cell_ell, _ = _cell_medians(x, y, ell, shape, grid)

    def median(a: np.ndarray) -> float:
        return float(np.median(a)) if a.size else float("nan")

    return PsfMap(
        fwhm_px=median(fwhm),
        ellipticity=median(ell),
        e1=median(e1),
        e2=median(e2),
        n_stars=int(fwhm.size),
        cell_fwhm_px=cell_fwhm,
        cell_ellipticity=cell_ell,
        cell_count=counts,
    )
