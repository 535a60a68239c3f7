"""PSF model: pixel images whose every pixel is a polynomial in the detector position.

The model follows PSFEx's pixel basis: star stamps, re-centred on a common sub-pixel centre
and normalised to unit flux, are fitted pixel by pixel with a polynomial of degree 0, 1 or 2
in the scaled position ``(u, v)`` (chosen from the number of stars). Evaluating the polynomial
at ``(x, y)`` gives the PSF image there; its pixels sum to 1 everywhere because every stamp
does and the constant term absorbs the sum.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

__all__ = ["PsfModel", "fit_psf_model", "measure_fwhm", "polynomial_terms"]

_UPSAMPLE = 8  # sub-pixel grid for the half-maximum area, fine enough for 0.5 % at 3 px FWHM


def polynomial_terms(u: np.ndarray, v: np.ndarray, degree: int) -> np.ndarray:
    """``(n, nterm)`` design matrix of ``u**i * v**j`` with ``i + j <= degree``.

    Order: 1, u, v, u^2, u v, v^2 (degree 2), so the first column is always the constant.
    """
    u = np.atleast_1d(np.asarray(u, np.float64))
    v = np.atleast_1d(np.asarray(v, np.float64))
    cols = [u**i * v ** (d - i) for d in range(degree + 1) for i in range(d, -1, -1)]
    return np.stack(cols, axis=-1)


@dataclasses.dataclass(frozen=True)
class PsfModel:
    """A spatially varying PSF.

    Attributes
    ----------
    coefficients : numpy.ndarray
        ``(nterm, k, k)`` float64 pixel images, one per polynomial term (`polynomial_terms`
        order) of the scaled position ``u = (x - x0) / sx``, ``v = (y - y0) / sy``.
    degree : int
        Polynomial degree (0 means a constant PSF).
    origin : tuple of float
        ``(x0, y0)`` pixel position where ``u = v = 0`` (the image centre).
    scale : tuple of float
        ``(sx, sy)`` pixels, half the image size, so that ``u, v`` lie in ``[-1, 1]``.
    fwhm : float
        FWHM in pixels of the PSF image at ``origin``.
    n_stars : int
        Number of stars that entered the final fit.
    """

    coefficients: np.ndarray
    degree: int
    origin: tuple[float, float]
    scale: tuple[float, float]
    fwhm: float
    n_stars: int

    @property
    def size(self) -> int:
        """Side ``k`` (odd) of the PSF images, pixels."""
        return int(self.coefficients.shape[-1])

    def basis(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``(n, nterm)`` polynomial terms at pixel positions ``x, y`` (shape ``(n,)``)."""
        u = (np.asarray(x, np.float64) - self.origin[0]) / self.scale[0]
        v = (np.asarray(y, np.float64) - self.origin[1]) / self.scale[1]
        return polynomial_terms(u, v, self.degree)

    def image_at(self, x: float, y: float) -> np.ndarray:
        """``(k, k)`` float32 PSF image centred on pixel ``(k // 2, k // 2)``, sum 1."""
        terms = self.basis(np.array([x]), np.array([y]))[0]
        img = np.tensordot(terms, self.coefficients, axes=1)
        return (img / img.sum()).astype(np.float32)

    def fwhm_at(self, x: float, y: float) -> float:
        """FWHM in pixels of the PSF at ``(x, y)``."""
        return measure_fwhm(self.image_at(x, y))


def measure_fwhm(psf_image: np.ndarray) -> float:
    """FWHM in pixels of a centred ``(k, k)`` PSF image, whatever its profile.

    The image is interpolated onto a grid ``_UPSAMPLE`` times finer (cubic spline) and the
    area above half the peak is turned into the diameter of a circle of that area, so an
    elliptical PSF gets the geometric mean of its two FWHMs.
    """
    image = np.asarray(psf_image, np.float64)
    k = image.shape[0]
    # Only the core holds the half-maximum contour: crop to a few pixels beyond it first.
    above = np.argwhere(image >= 0.5 * image.max())
    reach = int(np.abs(above - k // 2).max()) + 3
    if reach < k // 2:
        image = image[k // 2 - reach : k // 2 + reach + 1, k // 2 - reach : k // 2 + reach + 1]
        k = image.shape[0]
    # An exact 1/_UPSAMPLE pixel step (ndimage.zoom would stretch it to align the corners).
    axis = np.arange(0.0, k - 1 + 1e-9, 1.0 / _UPSAMPLE)
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    fine = ndimage.map_coordinates(image, [yy, xx], order=3)
    above = fine >= 0.5 * fine.max()
    # Only the connected region around the peak counts: noise far out must not add area.
    labels, _ = ndimage.label(above)
    peak_label = labels[np.unravel_index(np.argmax(fine), fine.shape)]
    area = np.count_nonzero(labels == peak_label) / _UPSAMPLE**2
    return float(2.0 * np.sqrt(area / np.pi))


def _choose_degree(n_stars: int, max_degree: int) -> int:
    # About ten stars per free coefficient keeps the pixel fits well conditioned.
    for degree, needed in ((2, 60), (1, 30)):
        if degree <= max_degree and n_stars >= needed:
            return degree
    return 0


def _weighted_fit(design: np.ndarray, stamps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Least-squares ``(nterm, k*k)`` coefficients, one fit per pixel sharing ``design``."""
    dw = design * weights[:, None]
    normal = design.T @ dw
    rhs = dw.T @ stamps
    return np.linalg.solve(normal, rhs)


def _remove_pedestal(coefficients: np.ndarray) -> np.ndarray:
    """Subtract each term's outer-ring median, then scale to unit sum at the origin.

    Unresolved faint sources and the sky estimator's mode-versus-mean offset leave a
    pedestal of a fraction of an electron per pixel around every star; summed over a stamp
    it is a few per cent of a faint star's flux, and the model would grow flat wings that
    steal that much from its core. The model averages many stars, so the median of its
    outermost ring (about four FWHM out, where a PSF is ~1e-6 of its peak) measures the
    pedestal with little noise.
    """
    k = coefficients.shape[-1]
    g = np.arange(k) - k // 2
    ring = np.hypot(g[:, None], g[None, :]) > 0.8 * (k // 2)
    out = coefficients - np.median(coefficients[:, ring], axis=1)[:, None, None]
    # Unit sum at the origin, where u = v = 0 and only the constant term counts.
    return out / out[0].sum()


def fit_psf_model(
    stamps: np.ndarray,
    stamp_var: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    shape: tuple[int, int],
    *,
    max_degree: int = 2,
    clip: float = 4.0,
) -> PsfModel:
    """Fit a `PsfModel` to re-centred, unit-flux star stamps.

    Parameters
    ----------
    stamps : numpy.ndarray
        ``(n, k, k)`` star images centred on pixel ``(k // 2, k // 2)``, each summing to ~1.
    stamp_var : numpy.ndarray
        ``(n,)`` typical per-pixel variance of each normalised stamp (noise / flux squared).
    x, y : numpy.ndarray
        ``(n,)`` pixel positions of the stars.
    shape : tuple of int
        ``(ny, nx)`` of the image, to scale positions into ``[-1, 1]``.
    max_degree : int
        Highest polynomial degree allowed.
    clip : float
        Stars whose reduced chi-square exceeds ``clip`` times the median are dropped once.
    """
    n, k, _ = stamps.shape
    origin = ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    scale = (max(shape[1] / 2.0, 1.0), max(shape[0] / 2.0, 1.0))
    flat = stamps.reshape(n, k * k).astype(np.float64)
    keep = np.ones(n, bool)
    u = (x - origin[0]) / scale[0]
    v = (y - origin[1]) / scale[1]
    for _ in range(3):
        used = keep
        degree = _choose_degree(int(used.sum()), max_degree)
        design = polynomial_terms(u, v, degree)
        coef = _weighted_fit(design[used], flat[used], 1.0 / stamp_var[used])
        chi2 = np.mean((flat - design @ coef) ** 2, axis=1) / stamp_var
        new_keep = keep & (chi2 <= clip * np.median(chi2[keep]))
        if new_keep.sum() == keep.sum() or new_keep.sum() < 3:
            break
        keep = new_keep
    coefficients = _remove_pedestal(coef.reshape(-1, k, k))
    model = PsfModel(coefficients, degree, origin, scale, 0.0, int(used.sum()))
    fwhm = measure_fwhm(model.image_at(*origin))
    return dataclasses.replace(model, fwhm=fwhm)
