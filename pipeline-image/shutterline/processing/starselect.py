"""Choose PSF stars and turn them into centred, unit-flux stamps for `psf.fit_psf_model`."""

from __future__ import annotations

import dataclasses

import numpy as np
import sep
from scipy import spatial

from shutterline.processing import psf as psf_mod
from shutterline.processing import stamps as stamps_mod

__all__ = ["PsfStarConfig", "build_psf", "select_psf_stars", "stellar_locus"]

_SEP_BAD = sep.OBJ_MERGED | sep.OBJ_TRUNC | sep.OBJ_SINGU
_RMAX = 12.0  # pixels; the half-light radius is relative to the flux inside it
# A band this share of the densest one's count may be the stars' (chosen on sparse-field
# seeds 100-129, scored on seeds 200-229: tests/benchmarks/README.md, stop 29).
_DENSE_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class PsfStarConfig:
    """Knobs of PSF star selection.

    Attributes
    ----------
    min_snr : float
        Minimum aperture signal-to-noise of a candidate.
    locus_width : float
        Half width, as a fraction, of the half-light-radius band around the stellar locus.
    neighbour_ratio : float
        A neighbour inside the stamp brighter than this fraction of the star rejects it.
    max_stars : int
        Brightest candidates kept (cost grows linearly with it).
    min_stars : int
        Fewer stars than this and no PSF can be built.
    max_degree : int
        Highest polynomial degree of the spatial variation.
    """

    min_snr: float = 30.0
    locus_width: float = 0.12
    neighbour_ratio: float = 0.02
    max_stars: int = 200
    min_stars: int = 5
    max_degree: int = 2


def stellar_locus(r50: np.ndarray) -> float:
    """Half-light radius (pixels) of point sources: the most compact dense band of ``r50``.

    Stars pile up at one radius (the PSF's), galaxies spread above it. A window of +-7 % in
    ``log r50`` counts each candidate's neighbours; of the bands at least half as dense as the
    densest, the most compact is the stars', since nothing real is smaller than the PSF. In a
    sparse field a group of galaxies can match or outnumber the few stars bright enough to
    measure; the densest band alone would then be theirs.
    """
    logr = np.sort(np.log(r50[np.isfinite(r50) & (r50 > 0)]))
    if logr.size == 0:
        return float("nan")
    counts = np.searchsorted(logr, logr + 0.07) - np.searchsorted(logr, logr - 0.07)
    dense = np.flatnonzero(counts >= np.ceil(_DENSE_SHARE * counts.max()))
    # Dense windows that overlap are one band; the first gap wider than a window ends it.
    gaps = np.flatnonzero(np.diff(logr[dense]) > 0.14)
    band = dense[: gaps[0] + 1 if gaps.size else dense.size]
    centre = logr[band[counts[band] == counts[band].max()]].mean()
    window = logr[np.abs(logr - centre) < 0.07]
    return float(np.exp(np.median(window)))


def _isolated(
    x: np.ndarray, y: np.ndarray, flux: np.ndarray, cand: np.ndarray, radius: float, ratio: float
) -> np.ndarray:
    """``(len(cand),)`` bool: no neighbour brighter than ``ratio`` x flux within ``radius``."""
    tree = spatial.cKDTree(np.column_stack([x, y]))
    ok = np.ones(cand.size, bool)
    for n, (i, near) in enumerate(
        zip(cand, tree.query_ball_point(np.column_stack([x[cand], y[cand]]), radius), strict=True)
    ):
        others = [j for j in near if j != i]
        ok[n] = not others or bool(np.all(flux[others] < ratio * flux[i]))
    return ok


def select_psf_stars(
    image: np.ndarray,
    bad: np.ndarray,
    objects: np.ndarray,
    snr: np.ndarray,
    saturated: np.ndarray,
    config: PsfStarConfig,
) -> tuple[np.ndarray, float]:
    """Indices into ``objects`` of PSF stars, and the stellar half-light radius (pixels).

    Parameters
    ----------
    image : numpy.ndarray
        ``(ny, nx)`` float32 background-subtracted image.
    bad : numpy.ndarray
        ``(ny, nx)`` bool, pixels to ignore.
    objects : numpy.ndarray
        sep catalogue (structured array, ``n`` rows).
    snr, saturated : numpy.ndarray
        ``(n,)`` aperture signal-to-noise and saturation flag of every object.
    """
    cand = np.flatnonzero(
        ((objects["flag"] & _SEP_BAD) == 0) & ~saturated & (snr >= config.min_snr)
    )
    if cand.size < config.min_stars:
        return cand[:0], float("nan")
    x, y = objects["x"], objects["y"]
    # Half-light radii cost ~0.1 ms each: only the brightest few hundred need one.
    cand = cand[np.argsort(-snr[cand])][: 3 * config.max_stars]
    r50, _ = sep.flux_radius(
        image, x[cand], y[cand], np.full(cand.size, _RMAX), 0.5, mask=bad, subpix=1
    )
    locus = stellar_locus(r50)
    if not np.isfinite(locus):  # no candidate has a measurable radius: no stars, not a crash
        return cand[:0], float("nan")
    cand = cand[np.abs(r50 / locus - 1.0) < config.locus_width]
    half = stamp_half_size(locus)
    ny, nx = image.shape
    inside = (
        (x[cand] > half + 1)
        & (x[cand] < nx - half - 2)
        & (y[cand] > half + 1)
        & (y[cand] < ny - half - 2)
    )
    cand = cand[inside]
    cand = cand[_isolated(x, y, objects["flux"], cand, 1.5 * half, config.neighbour_ratio)]
    cand = cand[np.argsort(-snr[cand])][: 2 * config.max_stars]
    badstamp, _ = stamps_mod.cutouts(
        bad, stamps_mod.nearest_pixel(x[cand]), stamps_mod.nearest_pixel(y[cand]), half + 1
    )
    cand = cand[~badstamp.any(axis=(1, 2))][: config.max_stars]
    return cand, locus


def stamp_half_size(r50: float) -> int:
    """Half size of PSF images for a stellar half-light radius ``r50`` (pixels).

    Eight half-light radii (about four FWHM) hold all but a fraction of a percent of the
    flux of Gaussian to Moffat (beta >= 3) profiles.
    """
    return int(np.clip(np.ceil(8.0 * r50), 7, 40))


def _centred_stamps(image: np.ndarray, xc: np.ndarray, yc: np.ndarray, half: int) -> np.ndarray:
    """``(n, k, k)`` stamps shifted (sinc) so each star sits on the central pixel."""
    xi, yi = stamps_mod.nearest_pixel(xc), stamps_mod.nearest_pixel(yc)
    raw, _ = stamps_mod.cutouts(image, xi, yi, half + 2)
    shifted = stamps_mod.fourier_shift(raw.astype(np.float64), yi - yc, xi - xc)
    return shifted[:, 2:-2, 2:-2]


def build_psf(
    image: np.ndarray,
    variance: np.ndarray,
    bad: np.ndarray,
    objects: np.ndarray,
    stars: np.ndarray,
    r50: float,
    max_degree: int = 2,
) -> tuple[psf_mod.PsfModel, np.ndarray, np.ndarray]:
    """Fit the PSF to ``stars`` (indices into ``objects``).

    Returns the model and the windowed centroids ``(x, y)`` of the stars, pixels.
    """
    sig = np.full(stars.size, max(r50 / 1.1774, 0.6))
    xc, yc, _ = sep.winpos(image, objects["x"][stars], objects["y"][stars], sig, mask=bad, subpix=1)
    half = stamp_half_size(r50)
    stamps = _centred_stamps(image, xc, yc, half)
    var, _ = stamps_mod.cutouts(
        variance, stamps_mod.nearest_pixel(xc), stamps_mod.nearest_pixel(yc), half
    )
    pixvar = np.median(var.reshape(stars.size, -1), axis=1).astype(np.float64)
    norm = stamps.sum(axis=(1, 2))
    model = None
    for _ in range(2):
        # Normalise by the PSF-fit flux once a model exists: a stamp sum is noisy in the wings.
        normed = stamps / norm[:, None, None]
        model = psf_mod.fit_psf_model(
            normed, pixvar / norm**2, xc, yc, image.shape, max_degree=max_degree
        )
        design = model.basis(xc, yc)
        prof = np.einsum("nt,tij->nij", design, model.coefficients)
        norm = (prof * stamps).sum(axis=(1, 2)) / (prof * prof).sum(axis=(1, 2))
    assert model is not None
    return model, xc, yc
