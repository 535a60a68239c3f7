"""Per-source measurements on a difference (or any calibrated) image: PSF flux, centroid,
aperture flux, second moments and mask flags.

PSF flux: the least-squares amplitude of the PSF at the centroid with equal weights,
``f = sum(P D) / sum(P**2)``, ``var(f) = sum(P**2 V) / sum(P**2)**2``. Equal weights keep
the estimate unbiased when the variance plane contains the source's own Poisson noise, and
they are optimal where it matters (faint sources on sky noise). Masked pixels (no data,
bad, saturated, cosmic ray, edge) are left out; the count of pixels used is ``ndata``.

Centroid: the matched-filter peak refined by two Gauss-Newton steps of a fit of the PSF and
its two derivatives; errors from the sandwich covariance of that linear fit.

Errors: every flux error is multiplied by ``noise_scale``, the measured standard deviation
of the matched-filter signal-to-noise on empty sky (`detection`), which accounts for the
pixel-to-pixel noise correlation that warping and convolution leave.

Moments: Gaussian-weighted second moments (weight of the PSF's width), de-weighted
analytically (exact for Gaussian profiles): ``M = (M_w^-1 - W^-1)^-1``.

Pixel convention: ``(y, x)``, centre of the first pixel at 0.0.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from shutterline.images import mask as mask_mod

__all__ = [
    "Cutter",
    "PsfFit",
    "aperture_flux",
    "bearing",
    "fit_psf",
    "moments",
    "on_static_source",
    "shifted_psf",
    "sky_jacobian",
]

_Bit = mask_mod.MaskBit
FIT_BAD = int(_Bit.NO_DATA | _Bit.BAD | _Bit.SAT | _Bit.CR | _Bit.EDGE)


def shifted_psf(psf: np.ndarray, dy: float, dx: float, *, derivatives: bool = True) -> np.ndarray:
    """PSF shifted by ``(dy, dx)`` pixels, and its ``y`` and ``x`` derivatives (Fourier).

    Parameters
    ----------
    psf : numpy.ndarray
        ``(k, k)`` PSF image centred at ``k // 2``.
    derivatives : bool
        Also return the derivatives (one inverse transform of the stack either way).

    Returns
    -------
    numpy.ndarray
        ``(3, k, k)`` float64: ``P(y - dy, x - dx)``, ``dP/dy``, ``dP/dx``; or ``(1, k, k)``.
    """
    k = psf.shape[0]
    ky, kx, psf_hat = _psf_spectrum(psf.shape, psf.dtype.str, psf.tobytes())
    # The phase ramp as an outer product of two 1-D ones: 2k exponentials, not k**2 / 2.
    spec = psf_hat * (np.exp(-1j * ky * dy) * np.exp(-1j * kx * dx))
    stack = np.stack([spec, spec * 1j * ky, spec * 1j * kx]) if derivatives else spec[None]
    return np.fft.irfft2(stack, s=(k, k), axes=(1, 2))


@functools.lru_cache(maxsize=4)
def _psf_spectrum(
    shape: tuple[int, ...], dtype: str, data: bytes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angular frequencies ``(k, 1)``, ``(1, k // 2 + 1)`` and the PSF's ``rfft2``: the same
    for every source of an image (a detector's measurements shift one PSF about 200 times)."""
    psf = np.frombuffer(data, dtype).reshape(shape)
    ky = np.fft.fftfreq(shape[0])[:, None] * 2 * np.pi
    kx = np.fft.rfftfreq(shape[1])[None, :] * 2 * np.pi
    out = (ky, kx, np.fft.rfft2(psf))
    for array in out:
        array.flags.writeable = False  # shared by every caller
    return out


@dataclasses.dataclass(frozen=True)
class Cutter:
    """Cut windows of an image, variance and mask around a pixel, clipped to the image.

    Attributes
    ----------
    image, variance, mask : numpy.ndarray
        ``(ny, nx)`` planes.
    scale : float
        Factor to the units the fluxes are wanted in (``NJY_PER_UNIT``), applied to the cut
        windows only (scaling whole planes would cost more than all the measurements).
    """

    image: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    scale: float = 1.0

    def cut(
        self, yc: int, xc: int, half: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[slice, slice]]:
        """Windows at ``[yc-half, yc+half]`` (image times ``scale``, variance times its square)
        and the slices into a ``(2h+1, 2h+1)`` stamp."""
        ny, nx = self.image.shape
        y0, y1 = max(yc - half, 0), min(yc + half + 1, ny)
        x0, x1 = max(xc - half, 0), min(xc + half + 1, nx)
        inner = (slice(y0 - yc + half, y1 - yc + half), slice(x0 - xc + half, x1 - xc + half))
        if y0 >= y1 or x0 >= x1:
            inner = (slice(0, 0), slice(0, 0))
            y0 = y1 = x0 = x1 = 0
        win = (slice(y0, y1), slice(x0, x1))
        return (
            self.image[win].astype(np.float64) * self.scale,
            self.variance[win].astype(np.float64) * self.scale**2,
            self.mask[win],
            inner,
        )


@dataclasses.dataclass(frozen=True)
class PsfFit:
    """Result of `fit_psf`: flux and error (image units), centroid and errors, pixels used.

    ``chi2_z`` is the significance of the PSF-fit residual in the core (pixels above 20 % of
    the peak): ``(chi2/dof - 1) / sqrt(2 / n)``, about N(0, 1) for a point source. ``chi2``
    and ``lnl`` are the fit's chi-square and Gaussian log-likelihood over all ``ndata`` pixels
    with the variance plane as it is (the alert schema's ``psfChi2``, ``psfLnL``).
    """

    flux: float
    flux_err: float
    y: float
    x: float
    y_err: float
    x_err: float
    ndata: int
    coverage: float
    chi2_z: float
    chi2: float = float("nan")
    lnl: float = float("nan")


def _linear(data: np.ndarray, var: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal-weight least squares of ``data`` on ``cols`` (n, p) and the sandwich covariance."""
    gram = cols.T @ cols
    inv = np.linalg.inv(gram + 1e-18 * np.trace(gram) * np.eye(gram.shape[0]))
    coef = inv @ (cols.T @ data)
    cov = inv @ (cols.T * var) @ cols @ inv
    return coef, cov


def fit_psf(
    cut: Cutter, psf: np.ndarray, y: float, x: float, *, recentre: bool, static: float = 0.0
) -> PsfFit:
    """PSF flux at ``(y, x)``; with ``recentre`` the centroid is fitted too (two steps).

    ``static`` (image units) is a model error on the core chi-square in proportion to the PSF,
    beside the fit's own 3 %: the PSF-matching residual a static source of that size leaves
    in a difference image (`dia.RESIDUAL_FRACTION` of its template flux, `dia._core_z`).
    """
    half = psf.shape[0] // 2
    yc, xc = round(y), round(x)
    img, var, msk, inner = cut.cut(yc, xc, half)
    ok = (msk & FIT_BAD) == 0
    dy, dx = y - yc, x - xc
    y_err = x_err = float("nan")
    for _ in range(2 if recentre else 0):
        p, gy, gx = (a[inner][ok] for a in shifted_psf(psf, dy, dx))
        if p.size < 4:
            break
        coef, cov = _linear(img[ok], var[ok], np.stack([p, gy, gx], axis=1))
        if coef[0] == 0:
            break
        step_y, step_x = (float(np.clip(-c / coef[0], -1.0, 1.0)) for c in coef[1:])
        dy, dx = dy + step_y, dx + step_x
        y_err = float(np.sqrt(max(cov[1, 1], 0.0)) / abs(coef[0]))
        x_err = float(np.sqrt(max(cov[2, 2], 0.0)) / abs(coef[0]))
    full = shifted_psf(psf, dy, dx, derivatives=False)[0]
    p = full[inner][ok]
    norm = float((p**2).sum())
    if p.size == 0 or norm <= 0:
        return PsfFit(
            float("nan"), float("nan"), yc + dy, xc + dx, y_err, x_err, 0, 0.0, float("nan")
        )
    flux = float((p * img[ok]).sum() / norm)
    err = float(np.sqrt((p**2 * var[ok]).sum()) / norm)
    core = p > 0.2 * p.max()
    resid = img[ok][core] - flux * p[core]
    # Allow a 3 % PSF-model error so bright real sources are not called badly shaped.
    model = (0.03 * flux) ** 2 + static**2
    chi2 = float(np.mean(resid**2 / (var[ok][core] + model * p[core] ** 2)))
    chi2_z = (chi2 - 1.0) / np.sqrt(2.0 / max(int(core.sum()), 1))
    v_all = np.maximum(var[ok], 1e-30)
    chi2_all = float(((img[ok] - flux * p) ** 2 / v_all).sum())
    lnl = -0.5 * (chi2_all + float(np.log(2.0 * np.pi * v_all).sum()))
    return PsfFit(
        flux,
        err,
        yc + dy,
        xc + dx,
        y_err,
        x_err,
        int(ok.sum()),
        norm / float((full**2).sum()),
        float(chi2_z),
        chi2_all,
        lnl,
    )


def aperture_flux(cut: Cutter, y: float, x: float, radius: float) -> tuple[float, float]:
    """Sum within a circle of ``radius`` pixels (edge pixels weighted by approximate overlap)."""
    half = int(np.ceil(radius)) + 1
    yc, xc = round(y), round(x)
    img, var, _, inner = cut.cut(yc, xc, half)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    dist = np.hypot(yy + yc - y, xx + xc - x)[inner]
    w = np.clip(radius + 0.5 - dist, 0.0, 1.0)
    return float((w * img).sum()), float(np.sqrt((w**2 * var).sum()))


def moments(stamp: np.ndarray, y: float, x: float, sigma_w: float) -> tuple[float, float, float]:
    """De-weighted second moments ``(ixx, iyy, ixy)`` in pixels**2 of a stamp about ``(y, x)``.

    ``stamp`` is ``(m, m)`` with ``(y, x)`` in its own pixel coordinates, the signal positive.
    NaNs when the weighted moments are not positive-definite after de-weighting (noise).
    """
    yy, xx = np.mgrid[: stamp.shape[0], : stamp.shape[1]]
    ry, rx = yy - y, xx - x
    w = np.exp(-0.5 * (ry**2 + rx**2) / sigma_w**2) * stamp
    total = w.sum()
    nan = (float("nan"),) * 3
    if total <= 0:
        return nan
    mxx, myy, mxy = (
        (w * rx * rx).sum() / total,
        (w * ry * ry).sum() / total,
        (w * rx * ry).sum() / total,
    )
    m = np.array([[mxx, mxy], [mxy, myy]])
    if np.linalg.det(m) <= 0:
        return nan
    inv = np.linalg.inv(m) - np.eye(2) / sigma_w**2
    if np.linalg.det(inv) <= 0 or inv[0, 0] <= 0:
        return nan
    true = np.linalg.inv(inv)
    return float(true[0, 0]), float(true[1, 1]), float(true[0, 1])


def sky_jacobian(wcs: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """``ra, dec`` (degrees) at pixels and the local Jacobian ``(2, 2, n)`` of the full WCS.

    Row 0 of the Jacobian is ``d(RA cos dec)``, row 1 ``d dec``, per pixel in ``x`` and ``y``
    (degrees), so errors propagate as the schema's ``raErr`` (which carries cos dec) wants.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ra, dec = (np.asarray(a) for a in wcs.all_pix2world(x, y, 0))
    ra_x, dec_x = (np.asarray(a) for a in wcs.all_pix2world(x + 1, y, 0))
    ra_y, dec_y = (np.asarray(a) for a in wcs.all_pix2world(x, y + 1, 0))
    jac = np.array(
        [[(ra_x - ra + 180) % 360 - 180, (ra_y - ra + 180) % 360 - 180], [dec_x - dec, dec_y - dec]]
    )
    jac[0] *= np.cos(np.radians(dec))
    return ra, dec, jac


def bearing(jac: np.ndarray, theta: np.ndarray, *, axial: bool) -> np.ndarray:
    """Position angle (degrees east of north) of pixel directions ``theta`` (radians from +x).

    ``axial`` for a line without direction (a trail): the result is in ``[0, 180)``.
    """
    c, s = np.cos(theta), np.sin(theta)
    east = jac[0, 0] * c + jac[0, 1] * s  # RA grows to the east
    north = jac[1, 0] * c + jac[1, 1] * s
    angle = np.degrees(np.arctan2(east, north))
    out: np.ndarray = angle % 180.0 if axial else angle % 360.0
    return out


def on_static_source(
    diff: Cutter,
    psf: np.ndarray,
    tpl: Cutter,
    tpl_psf: np.ndarray,
    fit: PsfFit,
    radius: float,
    min_snr: float,
) -> PsfFit:
    """The difference's PSF fit at the template's point source, when the change sits on one.

    A star that varies leaves its change at the star's place, but the difference there also
    holds the star's PSF-matching residual: the free centroid was pulled 2-4 px off bright
    variables on the fitting nights, and the flux read there was 0.4-0.7 of the truth's. The
    brightest template pixel within ``radius`` px, fitted there, fixes the position when it
    is a source of PSF-flux SNR >= ``min_snr`` brighter than the change and the difference's
    flux forced at it is at least the free fit's ``fit`` (else the change is beside the
    source: a transient by a star). Then: that forced fit, with the source's centroid errors.
    """
    if not (np.isfinite(fit.y) and np.isfinite(fit.flux)):
        return fit
    half = int(np.ceil(radius))
    yc, xc = round(fit.y), round(fit.x)
    img, _, msk, inner = tpl.cut(yc, xc, half)
    if img.size == 0:
        return fit
    peak = np.unravel_index(int(np.argmax(np.where(msk == 0, img, -np.inf))), img.shape)
    py, px = yc - half + inner[0].start + int(peak[0]), xc - half + inner[1].start + int(peak[1])
    src = fit_psf(tpl, tpl_psf, py, px, recentre=True)
    if not (
        np.isfinite(src.y)
        and src.flux > min_snr * src.flux_err
        and abs(fit.flux) < src.flux
        and np.hypot(src.y - fit.y, src.x - fit.x) <= radius
    ):
        return fit
    forced = fit_psf(diff, psf, src.y, src.x, recentre=False)
    if not abs(forced.flux) >= abs(fit.flux):
        return fit
    return dataclasses.replace(forced, y_err=src.y_err, x_err=src.x_err)
