"""Astrometric fit: match detections to a reference catalogue, fit a TAN WCS (CRVAL + CD).

The approximate WCS can be off by a few arcseconds, far more than the typical separation
of faint stars, so matching starts with a vote: every (bright source, bright reference)
pair within ``max_offset`` casts its pixel offset into a 2D histogram, and the true offset
is the one bin that many pairs agree on. Then match-and-fit iterations in the tangent plane:
a linear least-squares fit of the 6 affine terms, re-centring CRVAL so the reference pixel
``CRPIX`` (kept from the input, which may be the boresight far off the chip) stays the
tangent point.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.wcs import WCS
from scipy import spatial

from shutterline import exceptions
from shutterline.processing import sip

__all__ = [
    "AstrometryConfig",
    "AstrometryResult",
    "deproject",
    "fit_wcs",
    "gnomonic",
    "vote_offset",
]


@dataclasses.dataclass(frozen=True)
class AstrometryConfig:
    """Knobs of the astrometric fit.

    Attributes
    ----------
    max_offset_arcsec : float
        Largest error of the input WCS that the offset vote searches.
    n_bright : int
        Brightest sources and references that vote.
    match_radius_arcsec : float
        Match radius of the first iteration after the vote.
    clip : float
        Matches with residuals beyond ``clip`` x rms are dropped between iterations.
    iterations : int
        Match-and-fit iterations.
    min_matches : int
        Fewer matches than this and the fit is refused.
    max_sip_order : int
        Highest SIP distortion order tried (0 or 1: TAN only).
    sip_gain : float
        A SIP order is adopted only if it lowers the rms by this fraction, so a TAN field
        keeps a TAN WCS.
    """

    max_offset_arcsec: float = 6.0
    n_bright: int = 300
    match_radius_arcsec: float = 1.0
    clip: float = 3.0
    iterations: int = 4
    min_matches: int = 8
    max_sip_order: int = 3
    sip_gain: float = 0.15


@dataclasses.dataclass(frozen=True)
class AstrometryResult:
    """Fitted WCS and match statistics.

    Attributes
    ----------
    wcs : astropy.wcs.WCS
        TAN WCS on the same pixel grid with the input's CRPIX; or, when distortion demands
        it, TAN-SIP with CRPIX at the chip centre.
    source_index, ref_index : numpy.ndarray
        ``(n_matched,)`` indices of the matched pairs into the inputs.
    rms_arcsec, median_arcsec : float
        Root-mean-square and median of the match separations after the fit.
    offset_pixels : tuple of float
        ``(dx, dy)`` offset found by the vote, source minus reference.
    """

    wcs: WCS
    source_index: np.ndarray
    ref_index: np.ndarray
    rms_arcsec: float
    median_arcsec: float
    offset_pixels: tuple[float, float]

    @property
    def n_matched(self) -> int:
        """Number of matched pairs that entered the final fit."""
        return int(self.source_index.size)


def gnomonic(
    ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Standard coordinates ``(xi, eta)`` (degrees) of ``ra, dec`` about ``(ra0, dec0)``."""
    a, d = np.radians(ra), np.radians(dec)
    a0, d0 = np.radians(ra0), np.radians(dec0)
    cosd, cosda = np.cos(d), np.cos(a - a0)
    denom = np.sin(d0) * np.sin(d) + np.cos(d0) * cosd * cosda
    xi = cosd * np.sin(a - a0) / denom
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * cosd * cosda) / denom
    return np.degrees(xi), np.degrees(eta)


def deproject(
    xi: np.ndarray, eta: np.ndarray, ra0: float, dec0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `gnomonic`: ``(ra, dec)`` degrees of standard coordinates in degrees."""
    x, y = np.radians(xi), np.radians(eta)
    d0 = np.radians(dec0)
    den = np.cos(d0) - y * np.sin(d0)
    ra = ra0 + np.degrees(np.arctan2(x, den))
    dec = np.degrees(np.arctan2(np.sin(d0) + y * np.cos(d0), np.hypot(x, den)))
    return np.mod(ra, 360.0), dec


def vote_offset(
    xs: np.ndarray, ys: np.ndarray, xr: np.ndarray, yr: np.ndarray, max_offset: float
) -> tuple[float, float, int]:
    """Most common pixel offset (source minus reference) among all pairs, and its votes.

    Parameters
    ----------
    xs, ys : numpy.ndarray
        ``(n,)`` source pixel positions.
    xr, yr : numpy.ndarray
        ``(m,)`` reference positions predicted by the approximate WCS.
    max_offset : float
        Search half-width, pixels.
    """
    dx = (xs[:, None] - xr[None, :]).ravel()
    dy = (ys[:, None] - yr[None, :]).ravel()
    near = (np.abs(dx) < max_offset) & (np.abs(dy) < max_offset)
    dx, dy = dx[near], dy[near]
    nbin = int(np.ceil(max_offset)) * 2
    hist, ex, ey = np.histogram2d(dx, dy, bins=nbin, range=[[-nbin / 2, nbin / 2]] * 2)
    # Sum 2x2 neighbourhoods so an offset on a bin corner is not split four ways.
    summed = hist[:-1, :-1] + hist[1:, :-1] + hist[:-1, 1:] + hist[1:, 1:]
    ix, iy = np.unravel_index(np.argmax(summed), summed.shape)
    cx, cy = ex[ix + 1], ey[iy + 1]
    sel = (np.abs(dx - cx) < 1.5) & (np.abs(dy - cy) < 1.5)
    return float(np.median(dx[sel])), float(np.median(dy[sel])), int(sel.sum())


def _match(
    xs: np.ndarray, ys: np.ndarray, xr: np.ndarray, yr: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one nearest-neighbour pairs within ``radius`` pixels (mutual nearest)."""
    tree = spatial.cKDTree(np.column_stack([xr, yr]))
    dist, j = tree.query(np.column_stack([xs, ys]), distance_upper_bound=radius)
    i = np.flatnonzero(np.isfinite(dist))
    j = j[i]
    # A reference claimed twice keeps only its closest source.
    order = np.argsort(dist[i])
    _, first = np.unique(j[order], return_index=True)
    keep = order[first]
    return i[keep], j[keep]


def _affine_fit(
    x: np.ndarray, y: np.ndarray, xi: np.ndarray, eta: np.ndarray, crpix: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``(xi, eta) = t + CD @ (p - crpix)``; returns ``t`` (2,) and CD (2, 2)."""
    # Centre on the sources' mean for conditioning: CRPIX may lie far off the chip.
    mx, my = x.mean(), y.mean()
    design = np.column_stack([np.ones_like(x), x - mx, y - my])
    coef, *_ = np.linalg.lstsq(design, np.column_stack([xi, eta]), rcond=None)
    cd = coef[1:].T
    t = coef[0] + cd @ np.array([crpix[0] - mx, crpix[1] - my])
    return t, cd


@dataclasses.dataclass(frozen=True)
class _Solution:
    """One fit: TAN (``ab`` None) or TAN-SIP; ``crpix`` is 0-based."""

    crval: tuple[float, float]
    crpix: np.ndarray
    cd: np.ndarray
    ab: tuple[np.ndarray, np.ndarray] | None
    resid: np.ndarray  # (n, 2) arcsec, model minus reference

    @property
    def sep(self) -> np.ndarray:
        """``(n,)`` match separations after the fit, arcsec."""
        return np.hypot(self.resid[:, 0], self.resid[:, 1])

    @property
    def rms(self) -> float:
        """Root-mean-square separation, arcsec."""
        return float(np.sqrt(np.mean(self.sep**2)))

    def wcs(self, shape: tuple[int, int]) -> WCS:
        """The astropy WCS of this solution (with SIP inverse fitted over ``shape``)."""
        if self.ab is None:
            return sip.make_wcs(self.crval, self.crpix, self.cd)
        ap, bp = sip.inverse(self.ab[0], self.ab[1], shape, self.crpix)
        return sip.make_wcs(self.crval, self.crpix, self.cd, (*self.ab, ap, bp))


def _fit_once(
    x: np.ndarray,
    y: np.ndarray,
    ra: np.ndarray,
    dec: np.ndarray,
    crval: tuple[float, float],
    crpix: np.ndarray,
    order: int,
) -> _Solution:
    """Fit CD (and SIP when ``order >= 2``), re-centring CRVAL on CRPIX's sky position."""
    u, v = x - crpix[0], y - crpix[1]
    ab = None
    for _ in range(3):
        xi, eta = gnomonic(ra, dec, *crval)
        if order >= 2:
            t, cd, a, b = sip.fit_polynomial(u, v, xi, eta, order)
            ab = (a, b)
        else:
            t, cd = _affine_fit(x, y, xi, eta, crpix)
        ra0, dec0 = deproject(t[0], t[1], *crval)
        crval = (float(ra0), float(dec0))
    xi, eta = gnomonic(ra, dec, *crval)
    uu, vv = sip.apply(ab[0], ab[1], u, v) if ab is not None else (u, v)
    model = cd @ np.vstack([uu, vv])
    resid = np.column_stack([model[0] - xi, model[1] - eta]) * 3600.0
    return _Solution(crval, crpix, cd, ab, resid)


@dataclasses.dataclass(frozen=True)
class _Problem:
    """What every match-and-fit iteration needs."""

    x: np.ndarray
    y: np.ndarray
    ra: np.ndarray  # references near the chip only
    dec: np.ndarray
    scale: float  # arcsec per pixel
    shape: tuple[int, int]
    config: AstrometryConfig
    where: str


_Fit = tuple[_Solution, WCS, np.ndarray, np.ndarray]


def _iterate(
    prob: _Problem,
    pxy: tuple[np.ndarray, np.ndarray],
    radius: float,
    crval: tuple[float, float],
    crpix: np.ndarray,
    order: int,
    iterations: int,
) -> _Fit:
    """Match within ``radius`` pixels of the predictions ``pxy``, fit, predict; repeat."""
    px, py = pxy
    for _ in range(iterations):
        i, j = _match(prob.x, prob.y, px, py, radius)
        detail = f"{i.size} matches within {radius * prob.scale:.2f} arcsec"
        _require(i.size, prob.config, prob.where, detail)
        sol = _fit_once(prob.x[i], prob.y[i], prob.ra[j], prob.dec[j], crval, crpix, order)
        crval = sol.crval
        radius = max(prob.config.clip * sol.rms, 2.0 * float(np.median(sol.sep))) / prob.scale
        fitted = sol.wcs(prob.shape)
        px, py = fitted.all_world2pix(prob.ra, prob.dec, 0)
    return sol, fitted, i, j


def _with_sip(prob: _Problem, tan: _Fit) -> _Fit:
    """A TAN-SIP fit when it beats TAN clearly on the same matches, else ``tan``."""
    sol, tan_wcs, i, j = tan
    # SIP about the chip centre: a far-off CRPIX would make the polynomial ill-conditioned.
    centre = np.array([(prob.shape[1] - 1) / 2.0, (prob.shape[0] - 1) / 2.0])
    ra0, dec0 = tan_wcs.all_pix2world(centre[0], centre[1], 0)
    crval = (float(ra0), float(dec0))
    best: _Solution | None = None
    best_rms = sol.rms
    for order in range(2, prob.config.max_sip_order + 1):
        if i.size < 10 * len(sip.terms(order)):
            break
        trial = _fit_once(prob.x[i], prob.y[i], prob.ra[j], prob.dec[j], crval, centre, order)
        if trial.rms < (1.0 - prob.config.sip_gain) * best_rms:
            best, best_rms = trial, trial.rms
    if best is None or best.ab is None:
        return tan
    pxy = best.wcs(prob.shape).all_world2pix(prob.ra, prob.dec, 0)
    radius = max(prob.config.clip * best.rms, 2.0 * float(np.median(best.sep))) / prob.scale
    return _iterate(prob, pxy, radius, best.crval, centre, best.ab[0].shape[0] - 1, 2)


def fit_wcs(
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    ref_flux: np.ndarray,
    wcs: WCS,
    shape: tuple[int, int],
    config: AstrometryConfig,
    where: str = "",
) -> AstrometryResult:
    """Match sources to references and fit a TAN WCS, TAN-SIP if distortion demands.

    Parameters
    ----------
    x, y, flux : numpy.ndarray
        ``(n,)`` positions (pixels) and fluxes of usable point sources.
    ref_ra, ref_dec, ref_flux : numpy.ndarray
        ``(m,)`` reference positions (degrees) and fluxes (any unit, for ranking).
    wcs : astropy.wcs.WCS
        Approximate WCS.
    shape : tuple of int
        ``(ny, nx)``.
    where : str
        Names the visit and detector in error messages.

    Raises
    ------
    shutterline.exceptions.PermanentError
        Too few matches for a fit.
    """
    scale = float(np.mean(np.abs(np.linalg.svd(wcs.pixel_scale_matrix)[1]))) * 3600.0
    xr, yr = wcs.all_world2pix(ref_ra, ref_dec, 0)
    margin = config.max_offset_arcsec / scale + 2
    on = (xr > -margin) & (xr < shape[1] + margin) & (yr > -margin) & (yr < shape[0] + margin)
    on &= np.isfinite(xr) & np.isfinite(yr)
    refs = np.flatnonzero(on)
    _require(min(x.size, refs.size), config, where, f"{x.size} sources, {refs.size} refs")
    bright_s = np.argsort(-flux)[: config.n_bright]
    bright_r = refs[np.argsort(-ref_flux[refs])][: config.n_bright]
    dx, dy, votes = vote_offset(
        x[bright_s], y[bright_s], xr[bright_r], yr[bright_r], config.max_offset_arcsec / scale
    )
    _require(votes, config, where, f"offset vote peak has {votes} pairs")
    crval = (float(wcs.wcs.crval[0]), float(wcs.wcs.crval[1]))
    crpix = np.asarray(wcs.wcs.crpix, np.float64) - 1.0  # FITS 1-based -> 0-based pixels
    prob = _Problem(x, y, ref_ra[refs], ref_dec[refs], scale, shape, config, where)
    radius = config.match_radius_arcsec / scale
    pxy = (xr[refs] + dx, yr[refs] + dy)
    fit = _iterate(prob, pxy, radius, crval, crpix, 1, config.iterations)
    if config.max_sip_order >= 2:
        fit = _with_sip(prob, fit)
    sol, fitted, i, j = fit
    return AstrometryResult(fitted, i, refs[j], sol.rms, float(np.median(sol.sep)), (dx, dy))


def _require(n: int, config: AstrometryConfig, where: str, detail: str) -> None:
    if n < config.min_matches:
        raise exceptions.PermanentError(
            f"astrometric fit failed for {where}: {detail}; need {config.min_matches} "
            "(wrong pointing, empty field or wrong reference catalogue?)"
        )
