"""The matched difference, decorrelated in the same Fourier pass (Reiss & Lupton 2016).

``D = K * C + b - O`` (``C`` the convolved image, ``O`` the other) has noise power
``s_c |K(k)|**2 + s_o`` per frequency: the convolution correlates the noise of ``C``. When
``C`` is the science image (a blurrier template) that costs a quarter of a point source's
signal-to-noise with a plain PSF fit, and makes the per-pixel variance say nothing about the
noise of a flux. Filtering ``D`` with

    F(k) = sqrt((s_c kappa**2 + s_o) / (s_c |K(k)|**2 + s_o)),   kappa = K(0) = sum(K),

whitens the noise (to ``s_c kappa**2 + s_o`` per pixel) and keeps fluxes (``F(0) = 1``); the
difference PSF becomes ``F * K * P_c`` (or ``F * P_o``). ``s_c`` and ``s_o`` are the images'
median variances, so this is exact for uniform noise and approximate near bright stars.

It costs nothing extra: both images are transformed once, combined and filtered in Fourier
space, and transformed back once (three full-size transforms, against four for convolving
the image and, separately, its variance).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from shutterline.differencing import psfmatch

__all__ = ["difference_psf", "filter_spectrum", "matched_difference", "median_variance"]


def median_variance(variance: np.ndarray, good: np.ndarray) -> float:
    """Median of ``variance`` over ``good`` pixels (every fourth row and column)."""
    sub = (slice(None, None, 4), slice(None, None, 4))
    values = variance[sub][good[sub]]
    return float(np.median(values)) if values.size else float(np.median(variance))


def filter_spectrum(k_hat: np.ndarray, kappa: float, s_c: float, s_o: float) -> np.ndarray:
    """``F(k)`` for a kernel spectrum ``k_hat`` (any shape), float32."""
    # In place: on a full-size spectrum each temporary is 35 MB.
    power = np.abs(k_hat).astype(np.float32, copy=False)
    np.square(power, out=power)
    power *= np.float32(s_c)
    power += np.float32(s_o)
    np.divide(np.float32(s_c * kappa**2 + s_o), power, out=power)
    return np.sqrt(power, out=power)


def matched_difference(
    convolved: tuple[np.ndarray, float],
    other: tuple[np.ndarray, float],
    kernel: np.ndarray,
    noise: tuple[float, float],
) -> np.ndarray:
    """``F * (K * (a C) - b O)``, ``(ny, nx)`` float32, without the background term.

    Parameters
    ----------
    convolved, other : tuple
        ``((ny, nx) image, factor to nJy)`` of the convolved and the other image.
    kernel : numpy.ndarray
        ``(2h+1, 2h+1)`` matching kernel in nJy-to-nJy units.
    noise : tuple of float
        Median variances ``(s_c, s_o)`` of the two images in nJy**2.
    """
    (c_img, a), (o_img, b) = convolved, other
    ny, nx = c_img.shape
    pad = 2 * (kernel.shape[0] // 2)
    fy = scipy.fft.next_fast_len(ny + 2 * pad, real=True)
    fx = scipy.fft.next_fast_len(nx + 2 * pad, real=True)
    k_hat = psfmatch.kernel_spectrum(kernel, fy, fx)
    # In place throughout: each full-size complex temporary is 70 MB.
    spec = scipy.fft.rfft2(c_img.astype(np.float32, copy=False), s=(fy, fx))
    spec *= k_hat
    spec *= np.float32(a)
    o_hat = scipy.fft.rfft2(o_img.astype(np.float32, copy=False), s=(fy, fx))
    o_hat *= np.float32(b)
    spec -= o_hat
    del o_hat
    spec *= filter_spectrum(k_hat, float(kernel.sum()), *noise)
    del k_hat
    return scipy.fft.irfft2(spec, s=(fy, fx))[:ny, :nx].astype(np.float32, copy=False)


def difference_psf(
    psf: np.ndarray, kernel: np.ndarray, noise: tuple[float, float], *, through_kernel: bool
) -> np.ndarray:
    """PSF of the decorrelated difference: ``F * K * psf`` or ``F * psf``, odd size, sum 1.

    ``psf`` is the ``(k, k)`` science PSF; ``through_kernel`` when the science was convolved.
    """
    k, kh = psf.shape[0], kernel.shape[0] // 2
    m = k + 4 * kh
    m += 1 - m % 2
    big = np.zeros((m, m))
    o = (m - k) // 2
    big[o : o + k, o : o + k] = psf
    spec = np.fft.rfft2(np.fft.ifftshift(big))
    k_hat = psfmatch.kernel_spectrum(kernel, m, m).astype(np.complex128)
    spec *= filter_spectrum(k_hat, float(kernel.sum()), *noise)
    if through_kernel:
        spec *= k_hat / kernel.sum()
    out = np.fft.fftshift(np.fft.irfft2(spec, s=(m, m)))
    size = min(k + 2 * kh, m)
    c = (m - size) // 2
    out = out[c : c + size, c : c + size]
    return (out / out.sum()).astype(np.float32)
