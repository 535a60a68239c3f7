"""A trailed point-source model fitted to DIA sources: the alert schema's trail fields.

A source moving during the exposure (a fast asteroid) is a PSF smeared along a segment of
length ``L`` at angle ``theta``. For a Gaussian PSF of width ``s`` the model is analytic
(Veres et al. 2012): along the trail, ``(erf((u + L/2) / (s sqrt 2)) - erf((u - L/2) /
(s sqrt 2))) / (2 L)``; across it, a Gaussian of width ``s``; times the flux. It is fitted by
weighted least squares (`scipy.optimize.least_squares`, with the model's analytic Jacobian) to
every reported DIA source, with the trail as ``(L cos theta, L sin theta)`` so a point source
(``L`` near 0) does not make the fit singular. Errors are from the covariance ``(J^T J)^-1``
of the weighted residuals; ``chi2`` is their sum of squares over the ``ndata`` unmasked pixels
of the stamp.

`fill_columns` writes the schema's trail fields: ``trailLength`` (arcsec), ``trailAngle`` (the
bearing, degrees east of north, in ``[0, 180)``), ``trailFlux`` (nJy), ``trailRa/Dec`` and
their errors (every error times the difference image's noise scale, as the other errors),
``trailChi2``, ``trailNdata``, ``trail_flag`` (the fit failed) and ``trail_flag_edge``.

The PSF is the Gaussian of the difference image's PSF width (`psfmatch.psf_sigma`); the
simulated and most real PSFs are close to that, and the fit's ``chi2`` says how close.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from astropy.table import Table
from scipy import optimize, special

from shutterline.differencing import measurement

__all__ = ["TrailFit", "fill_columns", "fit_trail", "trail_model"]

_SQRT2 = float(np.sqrt(2.0))
_MAX_HALF = 48


@dataclasses.dataclass(frozen=True)
class TrailFit:
    """Result of `fit_trail` (pixels, radians from +x towards +y, image units of flux).

    ``ok`` is False when the fit failed (too few pixels, no convergence); ``edge`` when the
    stamp reached masked or off-image pixels.
    """

    flux: float
    flux_err: float
    y: float
    x: float
    y_err: float
    x_err: float
    length: float
    length_err: float
    theta: float
    theta_err: float
    chi2: float
    ndata: int
    ok: bool
    edge: bool


_FAILED = TrailFit(*(float("nan"),) * 11, 0, False, True)


def trail_model(yy: np.ndarray, xx: np.ndarray, p: np.ndarray, sigma: float) -> np.ndarray:
    """Trailed Gaussian at ``p = (x, y, flux, L cos theta, L sin theta)`` on pixel centres."""
    return _model_and_jacobian(yy, xx, p, sigma, jacobian=False)[0]


def _model_and_jacobian(
    yy: np.ndarray, xx: np.ndarray, p: np.ndarray, sigma: float, *, jacobian: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """`trail_model` and, if asked, its ``(n, 5)`` derivatives by ``p``, analytically.

    One evaluation instead of the six a forward-difference Jacobian costs per step. Below
    the model's floor ``L = 1e-3`` the length's derivatives are taken at the floor.
    """
    x0, y0, flux, lx, ly = p
    length = max(float(np.hypot(lx, ly)), 1e-3)
    c, s = lx / length, ly / length
    dx, dy = xx - x0, yy - y0
    u = dx * c + dy * s
    v = -dx * s + dy * c
    k = 1.0 / (sigma * _SQRT2)
    hi, lo = (u + length / 2) * k, (u - length / 2) * k
    along = special.erf(hi) - special.erf(lo)
    across = np.exp(-0.5 * (v / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    shape = along * across / (2 * length)
    model: np.ndarray = flux * shape
    if not jacobian:
        return model, None
    # d erf(z) / dz = 2 exp(-z**2) / sqrt(pi); z = (u +- L/2) / (sigma sqrt 2).
    g_hi, g_lo = np.exp(-(hi**2)), np.exp(-(lo**2))
    scale = flux * across / (2 * length) * (2.0 / np.sqrt(np.pi) * k)
    d_u = scale * (g_hi - g_lo)  # d model / d u
    d_v = model * (-v / sigma**2)  # d model / d v
    d_len = scale * 0.5 * (g_hi + g_lo) - model / length
    d_phi = d_u * v - d_v * u  # du/dphi = v, dv/dphi = -u
    jac = np.empty((model.size, 5))
    jac[:, 0] = -c * d_u + s * d_v
    jac[:, 1] = -s * d_u - c * d_v
    jac[:, 2] = shape
    jac[:, 3] = c * d_len - s / length * d_phi
    jac[:, 4] = s * d_len + c / length * d_phi
    return model, jac


def fit_trail(
    cut: measurement.Cutter,
    sigma: float,
    y: float,
    x: float,
    flux: float,
    length: float = 0.0,
    theta: float = 0.0,
    extent: float = 0.0,
) -> TrailFit:
    """Fit the trailed model near ``(y, x)``, starting from ``flux``, ``length``, ``theta``.

    The stamp holds the start's trail and ``extent`` (pixels: the detection footprint's
    size) with a margin; a stamp shorter than the trail would leave length and flux free to
    grow together.
    """
    start_len = length if np.isfinite(length) and length > sigma else sigma
    reach = max(3.5 * sigma + start_len / 2, extent / 2 + 2 * sigma)
    half = int(min(np.ceil(reach + 2), _MAX_HALF))
    yc, xc = round(y), round(x)
    img, var, msk, inner = cut.cut(yc, xc, half)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    yy, xx = yy[inner] + yc, xx[inner] + xc
    ok = ((msk & measurement.FIT_BAD) == 0) & (var > 0)
    edge = not ok.all() or img.shape != (2 * half + 1, 2 * half + 1)
    if ok.sum() < 12 or not np.isfinite(flux):
        return _FAILED
    w = 1.0 / np.sqrt(var[ok])
    data, py, px = img[ok], yy[ok].astype(np.float64), xx[ok].astype(np.float64)
    th = theta if np.isfinite(theta) else 0.0
    p0 = np.array([x, y, flux, start_len * np.cos(th), start_len * np.sin(th)], np.float64)

    def resid(p: np.ndarray) -> np.ndarray:
        r: np.ndarray = (data - trail_model(py, px, p, sigma)) * w
        return r

    def resid_jac(p: np.ndarray) -> np.ndarray:
        jac = _model_and_jacobian(py, px, p, sigma)[1]
        assert jac is not None
        out: np.ndarray = jac * -w[:, None]
        return out

    try:
        res = optimize.least_squares(
            resid, p0, jac=resid_jac, method="lm", max_nfev=200, x_scale="jac"
        )
        cov = np.linalg.inv(res.jac.T @ res.jac)
    except (ValueError, np.linalg.LinAlgError):
        return _FAILED
    if not res.success or not np.all(np.isfinite(res.x)):
        return _FAILED
    return _result(res.x, cov, float(res.fun @ res.fun), int(ok.sum()), edge)


def _result(p: np.ndarray, cov: np.ndarray, chi2: float, ndata: int, edge: bool) -> TrailFit:
    """Length and angle with errors propagated from ``(L cos theta, L sin theta)``."""
    x0, y0, flux, lx, ly = (float(v) for v in p)
    length = float(np.hypot(lx, ly))
    var = np.clip(np.diag(cov), 0.0, None)
    c = cov[3:, 3:]
    if length > 0:
        j_len = np.array([lx, ly]) / length
        j_theta = np.array([-ly, lx]) / length**2
        length_err = float(np.sqrt(max(j_len @ c @ j_len, 0.0)))
        theta_err = float(np.sqrt(max(j_theta @ c @ j_theta, 0.0)))
    else:
        length_err, theta_err = float(np.sqrt(var[3] + var[4])), float(np.pi)
    # A segment has no direction: theta in [0, pi).
    theta = float(np.arctan2(ly, lx) % np.pi)
    return TrailFit(
        flux, float(np.sqrt(var[2])), y0, x0, float(np.sqrt(var[1])), float(np.sqrt(var[0])),
        length, length_err, theta, min(theta_err, float(np.pi)), chi2, ndata, True, edge,
    )  # fmt: skip


def fill_columns(
    table: Table, cut: measurement.Cutter, sigma: float, wcs: Any, noise_scale: float
) -> None:
    """The trail columns of every row of a DIA source table from `fit_trail`, in place."""
    if not len(table):
        return
    ixx, iyy, ixy = (np.nan_to_num(np.asarray(table[c], float)) for c in ("ixx", "iyy", "ixy"))
    theta0 = 0.5 * np.arctan2(2.0 * ixy, ixx - iyy)  # the moments' major axis
    extent = np.asarray(table["bbox_size"], float)
    # Start from the footprint's length less the PSF's part of it.
    start = np.maximum(extent - 5.0 * sigma, 2.0 * sigma)
    fits = [
        fit_trail(cut, sigma, float(r["y"]), float(r["x"]), float(r["psf_flux"]), s0, t, e)
        for r, s0, t, e in zip(table, start, theta0, extent, strict=True)
    ]

    def get(name: str) -> np.ndarray:
        return np.array([getattr(f, name) for f in fits], np.float64)

    ok = np.array([f.ok for f in fits])
    table["trail_flag"] = ~ok
    table["trail_flag_edge"] = np.array([f.edge for f in fits])
    table["trail_ndata"] = get("ndata").astype(np.int32)
    table["trail_chi2"] = get("chi2")
    table["trail_flux"] = get("flux")
    table["trail_flux_err"] = get("flux_err") * noise_scale
    if wcs is None:
        return
    x, y = np.where(ok, get("x"), table["x"]), np.where(ok, get("y"), table["y"])
    ra, dec, jac = measurement.sky_jacobian(wcs, x, y)
    vx, vy = (get("x_err") * noise_scale) ** 2, (get("y_err") * noise_scale) ** 2
    scale = np.sqrt(np.abs(jac[0, 0] * jac[1, 1] - jac[0, 1] * jac[1, 0])) * 3600.0
    for name, values in (
        ("trail_ra", ra), ("trail_dec", dec),
        ("trail_ra_err", np.sqrt(jac[0, 0] ** 2 * vx + jac[0, 1] ** 2 * vy)),
        ("trail_dec_err", np.sqrt(jac[1, 0] ** 2 * vx + jac[1, 1] ** 2 * vy)),
        ("trail_length", get("length") * scale),
        ("trail_length_err", get("length_err") * noise_scale * scale),
        ("trail_angle", measurement.bearing(jac, get("theta"), axial=True)),
        ("trail_angle_err", np.degrees(get("theta_err")) * noise_scale),
    ):  # fmt: skip
        table[name] = np.where(ok, values, np.nan)
