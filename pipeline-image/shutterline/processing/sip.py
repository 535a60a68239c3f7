"""SIP distortion: polynomial fits on top of a TAN projection, as FITS SIP coefficients.

The SIP convention (Shupe et al. 2005): with ``u, v`` pixel offsets from CRPIX, the
intermediate world coordinates are ``CD @ (u + A(u, v), v + B(u, v))`` where ``A`` and ``B``
are polynomials with terms ``u^p v^q``, ``2 <= p + q <= order``. ``AP, BP`` are the inverse
polynomials, so that readers that need them (and astropy's fast path) can go sky to pixel.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS, Sip

__all__ = ["apply", "fit_polynomial", "inverse", "make_wcs", "terms"]

_SCALE = 1000.0  # pixels; keeps u^p v^q of order one in the least-squares design


def terms(order: int, min_order: int = 0) -> list[tuple[int, int]]:
    """Exponents ``(p, q)`` with ``min_order <= p + q <= order``."""
    return [(p, d - p) for d in range(min_order, order + 1) for p in range(d, -1, -1)]


def _design(u: np.ndarray, v: np.ndarray, pq: list[tuple[int, int]]) -> np.ndarray:
    us, vs = u / _SCALE, v / _SCALE
    return np.column_stack([us**p * vs**q for p, q in pq])


def _to_array(coef: np.ndarray, pq: list[tuple[int, int]], order: int) -> np.ndarray:
    """``(order + 1, order + 1)`` SIP array ``[p, q]`` from scaled-term coefficients."""
    out = np.zeros((order + 1, order + 1))
    for c, (p, q) in zip(coef, pq, strict=True):
        out[p, q] = c / _SCALE ** (p + q)
    return out


def fit_polynomial(
    u: np.ndarray, v: np.ndarray, xi: np.ndarray, eta: np.ndarray, order: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``(xi, eta) = t + CD @ ((u, v) + (A, B)(u, v))`` by linear least squares.

    Parameters
    ----------
    u, v : numpy.ndarray
        ``(n,)`` pixel offsets from CRPIX.
    xi, eta : numpy.ndarray
        ``(n,)`` standard coordinates of the references, degrees.
    order : int
        Highest total degree of ``A`` and ``B`` (>= 2).

    Returns
    -------
    t : numpy.ndarray
        ``(2,)`` standard coordinates of CRPIX (zero once CRVAL is right), degrees.
    cd : numpy.ndarray
        ``(2, 2)`` degrees per pixel.
    a, b : numpy.ndarray
        ``(order + 1, order + 1)`` SIP arrays, pixels.
    """
    pq = terms(order)
    coef, *_ = np.linalg.lstsq(_design(u, v, pq), np.column_stack([xi, eta]), rcond=None)
    full = [_to_array(coef[:, k], pq, order) for k in range(2)]
    t = np.array([full[0][0, 0], full[1][0, 0]])
    cd = np.array([[full[0][1, 0], full[0][0, 1]], [full[1][1, 0], full[1][0, 1]]])
    high = np.stack(full)  # (2, order + 1, order + 1): CD @ (A, B) plus the affine part
    for arr in high:
        arr[0, 0] = arr[1, 0] = arr[0, 1] = 0.0
    ab = np.einsum("ij,jpq->ipq", np.linalg.inv(cd), high)
    return t, cd, ab[0], ab[1]


def apply(a: np.ndarray, b: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(u + A(u, v), v + B(u, v))``."""
    order = a.shape[0] - 1
    du = sum(a[p, q] * u**p * v**q for p, q in terms(order, 2))
    dv = sum(b[p, q] * u**p * v**q for p, q in terms(order, 2))
    return u + du, v + dv


def inverse(
    a: np.ndarray, b: np.ndarray, shape: tuple[int, int], crpix: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``AP, BP`` (one order higher than ``A, B``) fitted on a grid covering ``shape``."""
    order = a.shape[0] - 1
    gy, gx = np.mgrid[0 : shape[0] : 40j, 0 : shape[1] : 20j]
    u, v = gx.ravel() - crpix[0], gy.ravel() - crpix[1]
    uu, vv = apply(a, b, u, v)
    pq = terms(order + 1, 1)
    design = _design(uu, vv, pq)
    coef, *_ = np.linalg.lstsq(design, np.column_stack([u - uu, v - vv]), rcond=None)
    return _to_array(coef[:, 0], pq, order + 1), _to_array(coef[:, 1], pq, order + 1)


def make_wcs(
    crval: tuple[float, float],
    crpix: np.ndarray,
    cd: np.ndarray,
    sip: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> WCS:
    """A TAN (or TAN-SIP when ``sip = (a, b, ap, bp)``) WCS; ``crpix`` 0-based pixels."""
    wcs = WCS(naxis=2)
    suffix = "-SIP" if sip is not None else ""
    wcs.wcs.ctype = ["RA---TAN" + suffix, "DEC--TAN" + suffix]
    wcs.wcs.crpix = np.asarray(crpix, np.float64) + 1.0
    wcs.wcs.crval = crval
    wcs.wcs.cd = cd
    if sip is not None:
        wcs.sip = Sip(sip[0], sip[1], sip[2], sip[3], wcs.wcs.crpix)
    return wcs
