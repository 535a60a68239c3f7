"""Positive and negative detections on a difference image with a PSF matched filter.

The likelihood of a point source at a pixel is the difference image cross-correlated with the
PSF; its signal-to-noise is ``(D * P) / sqrt(V * P**2)``. For the whole image we approximate
the denominator by ``sqrt(V sum(P**2))`` (the variance at the pixel itself), which saves a
full-image convolution; it is exact on sky but wrong near bright stars, whose photon noise
makes the variance vary on the PSF scale (too high at the centre, too low in the wings where
subtraction residuals sit). So each footprint's peak is re-evaluated with the exact
denominator and kept only if it still passes. Cost: one FFT convolution, one threshold, one
labelling.

Saturated, edge, no-data and satellite-streak pixels (and bad or cosmic-ray pixels not
interpolated over) are set to zero before filtering and cannot hold a peak. Footprints are
connected pixels with ``|snr| >= threshold``; one detection per footprint at its most
significant pixel (no deblending). A positive and a negative footprint whose peaks lie
within ``DIPOLE_RADIUS_FWHM`` PSF widths are merged into one detection flagged as a dipole,
kept at the stronger lobe.

Pixel convention: ``(y, x)``, centre of the first pixel at 0.0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numba
import numpy as np
from scipy import ndimage

from shutterline.differencing import psfmatch
from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod

__all__ = ["DIPOLE_RADIUS_FWHM", "Detections", "detect", "noise_scale", "snr_map"]

DIPOLE_RADIUS_FWHM = 2.0
_Bit = mask_mod.MaskBit
#: Pixels that carry no usable signal: zeroed before filtering, so no detection peaks there
#: (a saturated core or a cosmic ray is not a DIA source; the footprint flags still say when
#: a source touches such pixels). Bad and cosmic-ray pixels that ISR interpolated over
#: (``INTRP``) keep their values: zeroing them would blind whole columns.
_NO_SIGNAL = int(_Bit.NO_DATA | _Bit.EDGE | _Bit.SAT | _Bit.STREAK)
_UNREPAIRED = int(_Bit.BAD | _Bit.CR)
_NOT_SKY = _NO_SIGNAL | int(_Bit.BAD | _Bit.CR | _Bit.SUSPECT)
_INTRP = int(_Bit.INTRP)


@dataclasses.dataclass(frozen=True)
class Detections:
    """One row per detection (arrays of equal length).

    Attributes
    ----------
    y, x : numpy.ndarray
        int peak pixel of the matched-filter signal-to-noise.
    peak_snr : numpy.ndarray
        float signal-to-noise at the peak (negative for negative detections).
    bbox : numpy.ndarray
        ``(n, 4)`` int footprint bounding box ``y0, x0, y1, x1`` (half-open).
    npix : numpy.ndarray
        int footprint area in pixels.
    is_dipole : numpy.ndarray
        bool, a merged positive / negative pair.
    snr : numpy.ndarray
        ``(ny, nx)`` float32 matched-filter signal-to-noise map (shared, not per row), already
        divided by ``noise_scale``.
    noise_scale : float
        Measured / predicted standard deviation of the matched filter on empty sky (see
        `noise_scale`); flux errors are multiplied by it.
    """

    y: np.ndarray
    x: np.ndarray
    peak_snr: np.ndarray
    bbox: np.ndarray
    npix: np.ndarray
    is_dipole: np.ndarray
    snr: np.ndarray
    noise_scale: float

    def __len__(self) -> int:
        return int(self.y.size)


def snr_map(difference: exposure_mod.Exposure) -> np.ndarray:
    """``(ny, nx)`` float32 matched-filter signal-to-noise of a point source at each pixel."""
    if difference.psf is None:
        raise ValueError("difference image has no PSF for the matched filter")
    psf = difference.psf.astype(np.float64)
    mask = np.ascontiguousarray(difference.mask, np.int32)
    image = _zero_no_signal(np.ascontiguousarray(difference.image, np.float32), mask)
    snr = psfmatch.convolve(image, psf[::-1, ::-1])
    del image
    variance = np.ascontiguousarray(difference.variance, np.float32)
    _divide_by_noise(snr, variance, mask, np.float32(np.sqrt((psf**2).sum())))
    return snr


@numba.njit(cache=True, nogil=True, inline="always")
def _no_signal(m: int) -> bool:
    return (m & _NO_SIGNAL) != 0 or ((m & _UNREPAIRED) != 0 and (m & _INTRP) == 0)


@numba.njit(cache=True, nogil=True)
def _zero_no_signal(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` with the pixels that carry no signal set to 0 (one pass)."""
    out = np.empty_like(image)
    for r in range(image.shape[0]):
        for c in range(image.shape[1]):
            out[r, c] = np.float32(0.0) if _no_signal(mask[r, c]) else image[r, c]
    return out


@numba.njit(cache=True, nogil=True)
def _divide_by_noise(
    snr: np.ndarray, variance: np.ndarray, mask: np.ndarray, norm: np.float32
) -> None:
    """``snr / (sqrt(V) norm)`` in place, 0 where no signal or no (or NaN) variance.

    One pass where numpy took six (the same float32 operations, so the same bits).
    """
    for r in range(snr.shape[0]):
        for c in range(snr.shape[1]):
            denom = np.sqrt(variance[r, c]) * norm
            if _no_signal(mask[r, c]) or not denom > 0:
                snr[r, c] = 0.0
            else:
                snr[r, c] = snr[r, c] / denom


def noise_scale(snr: np.ndarray, mask: np.ndarray, stride: int = 5) -> float:
    """Robust standard deviation of the matched-filter signal-to-noise over clean pixels.

    On empty sky it is 1 if the variance plane describes the noise of a PSF-weighted sum; the
    pixel correlations left by warping and convolution make it differ. The median absolute
    deviation ignores the few pixels on sources; a sparse grid is enough and cheap.
    """
    sub = (slice(stride // 2, None, stride), slice(stride // 2, None, stride))
    values = snr[sub][(mask[sub] & _NOT_SKY) == 0]
    if values.size < 1000:
        return 1.0
    med = np.median(values)
    scale = float(1.4826 * np.median(np.abs(values - med)))
    return scale if 0.3 < scale < 5.0 else 1.0


_Row = tuple[int, int, float, tuple[int, int, int, int], int]


def _footprints(snr: np.ndarray, threshold: float) -> list[_Row]:
    """``(y, x, peak, bbox, npix)`` per connected footprint of ``snr >= threshold``, then per
    footprint of ``snr <= -threshold``, each sign in raster order of its first pixel.

    One labelling of ``|snr| >= threshold`` (`_hit_footprints`, where one per sign took two):
    a footprint holding both signs, a positive lobe touching a negative one, is split by
    labelling its box again per sign, so the footprints are those of each sign alone.
    """
    found: dict[int, list[tuple[int, _Row]]] = {1: [], -1: []}
    for sl, own in _hit_footprints(snr, threshold):
        positive = own & (snr[sl] > 0)
        for sign in (1, -1):
            part = positive if sign > 0 else own & ~positive
            if not part.any():
                continue
            if np.array_equal(part, own):
                found[sign].append(_footprint_row(snr, sl, own, sign))
                continue
            sub, _ = ndimage.label(part)
            for j, ssl in enumerate(ndimage.find_objects(sub), start=1):
                box = (
                    slice(sl[0].start + ssl[0].start, sl[0].start + ssl[0].stop),
                    slice(sl[1].start + ssl[1].start, sl[1].start + ssl[1].stop),
                )
                found[sign].append(_footprint_row(snr, box, sub[ssl] == j, sign))
    return [row for sign in (1, -1) for _, row in sorted(found[sign], key=lambda t: t[0])]


def _hit_footprints(
    snr: np.ndarray, threshold: float
) -> Iterator[tuple[tuple[slice, slice], np.ndarray]]:
    """Box and pixels (``(h, w)`` bool) of each 4-connected footprint of ``|snr| >= threshold``.

    What ``ndimage.label`` (default structure) and ``find_objects`` gave, in another order,
    found from the few pixels above the threshold: their label plane and its scan were about
    70 ms of a 4096 x 2048 image. The threshold is compared in NumPy's promoted dtype (a
    Python float in the map's float32).
    """
    hits = _hits(snr, np.result_type(snr.dtype, threshold).type(threshold))
    nx = snr.shape[1]
    root = _roots(hits, nx)
    order = np.argsort(root, kind="stable")
    starts = np.flatnonzero(np.diff(root[order]))
    for group in np.split(order, starts + 1) if hits.size else []:
        ys, xs = np.divmod(hits[group], nx)
        y0, x0, y1, x1 = int(ys[0]), int(xs.min()), int(ys[-1]) + 1, int(xs.max()) + 1
        own = np.zeros((y1 - y0, x1 - x0), bool)
        own[ys - y0, xs - x0] = True
        yield (slice(y0, y1), slice(x0, x1)), own


@numba.njit(cache=True, nogil=True)
def _hits(snr: np.ndarray, threshold: float) -> np.ndarray:
    """Flat indices, ascending, of the pixels with ``|snr| >= threshold`` (NaN is not); by
    row and column, as the map is a view (a copy or ``ravel`` would cost a full pass)."""
    ny, nx = snr.shape
    n = 0
    for r in range(ny):
        for c in range(nx):
            n += abs(snr[r, c]) >= threshold
    out = np.empty(n, np.int64)
    k = 0
    for r in range(ny):
        for c in range(nx):
            if abs(snr[r, c]) >= threshold:
                out[k] = r * nx + c
                k += 1
    return out


@numba.njit(cache=True, nogil=True)
def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _link(parent: np.ndarray, i: int, j: int) -> None:
    a, b = _root(parent, i), _root(parent, j)
    parent[max(a, b)] = min(a, b)  # the smaller, the earlier pixel, stays the root


@numba.njit(cache=True, nogil=True)
def _roots(hits: np.ndarray, nx: int) -> np.ndarray:
    """For each of ``hits`` (ascending flat indices, rows of ``nx``) the position in ``hits``
    of its footprint's first pixel: union-find over left and upper neighbours."""
    parent = np.arange(hits.size)
    up = 0  # the first hit not before the pixel above: it only moves forward
    for i in range(hits.size):
        p = hits[i]
        if i > 0 and hits[i - 1] == p - 1 and p % nx != 0:
            _link(parent, i - 1, i)
        while hits[up] < p - nx:
            up += 1
        if hits[up] == p - nx:
            _link(parent, up, i)
    for i in range(hits.size):
        parent[i] = _root(parent, i)
    return parent


def _footprint_row(
    snr: np.ndarray, sl: tuple[slice, ...], own: np.ndarray, sign: int
) -> tuple[int, _Row]:
    """(raster index of the first pixel, row) of the footprint ``own`` in the box ``sl``."""
    values = np.where(own, sign * snr[sl], -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(values)), values.shape)
    fy, fx = np.unravel_index(int(np.argmax(own)), own.shape)
    y0, x0 = sl[0].start, sl[1].start
    box = (y0, x0, sl[0].stop, sl[1].stop)
    first = (y0 + int(fy)) * snr.shape[1] + x0 + int(fx)
    return first, (y0 + int(iy), x0 + int(ix), sign * float(values[iy, ix]), box, int(own.sum()))


def _exact_peak(difference: exposure_mod.Exposure, y: int, x: int, approx: float) -> float:
    """The peak's signal-to-noise with the exact ``sqrt(V * P**2)`` denominator."""
    assert difference.psf is not None
    psf = difference.psf.astype(np.float64)
    half = psf.shape[0] // 2
    ny, nx = difference.shape
    y0, y1 = max(y - half, 0), min(y + half + 1, ny)
    x0, x1 = max(x - half, 0), min(x + half + 1, nx)
    weights = psf[y0 - y + half : y1 - y + half, x0 - x + half : x1 - x + half] ** 2
    exact = float((weights * difference.variance[y0:y1, x0:x1]).sum())
    local = float(difference.variance[y, x]) * float((psf**2).sum())
    if exact <= 0 or local <= 0:
        return approx
    return approx * float(np.sqrt(local / exact))


def _rescale_edge_band(snr: np.ndarray, difference: exposure_mod.Exposure) -> None:
    """Divide the border band's signal-to-noise by its own measured scale, in place.

    From ``EDGEWID`` to ``EDGEHALF`` pixels from the border (`subtract.edge_width`) the
    convolution misses part of the kernel and the noise departs from the variance plane
    (3-12 % above it on the fitting nights); only a larger scale is applied.
    """
    lo, hi = int(difference.metadata.get("EDGEWID", 0)), int(difference.metadata.get("EDGEHALF", 0))
    if hi <= lo or 2 * hi >= min(snr.shape):
        return
    band = np.zeros(snr.shape, bool)
    band[:hi], band[-hi:], band[:, :hi], band[:, -hi:] = True, True, True, True
    inner = np.zeros(snr.shape, bool)
    inner[lo : snr.shape[0] - lo, lo : snr.shape[1] - lo] = True
    band &= inner
    values = snr[band & ((difference.mask & (_NOT_SKY & ~int(_Bit.SUSPECT))) == 0)]
    if values.size < 1000:
        return
    s = float(1.4826 * np.median(np.abs(values - np.median(values))))
    if s > 1.0:
        snr[band] /= np.float32(s)


def detect(difference: exposure_mod.Exposure, threshold: float = 5.0) -> Detections:
    """Detect positive and negative point sources at ``|snr| >= threshold``.

    Parameters
    ----------
    difference : Exposure
        ``(ny, nx)`` difference image with variance and PSF.
    threshold : float
        Matched-filter signal-to-noise threshold (sigma).
    """
    snr = snr_map(difference)
    scale = noise_scale(snr, difference.mask)
    snr /= np.float32(scale)
    _rescale_edge_band(snr, difference)
    rows = _footprints(snr, threshold)
    rows = [(r[0], r[1], _exact_peak(difference, r[0], r[1], r[2]), r[3], r[4]) for r in rows]
    rows = [r for r in rows if abs(r[2]) >= threshold]
    fwhm = (
        psfmatch.psf_sigma(difference.psf) * 2.3548200450309493
        if difference.psf is not None
        else 3.0
    )
    rows, dipole = _merge_dipoles(rows, DIPOLE_RADIUS_FWHM * fwhm)
    if not rows:
        empty = np.zeros(0, int)
        return Detections(
            empty, empty, np.zeros(0), np.zeros((0, 4), int), empty, np.zeros(0, bool), snr, scale
        )
    return Detections(
        y=np.array([r[0] for r in rows], int),
        x=np.array([r[1] for r in rows], int),
        peak_snr=np.array([r[2] for r in rows]),
        bbox=np.array([r[3] for r in rows], int),
        npix=np.array([r[4] for r in rows], int),
        is_dipole=dipole,
        snr=snr,
        noise_scale=scale,
    )


def _merge_dipoles(
    rows: list[tuple[int, int, float, tuple[int, int, int, int], int]], radius: float
) -> tuple[list[tuple[int, int, float, tuple[int, int, int, int], int]], np.ndarray]:
    """Merge opposite-sign detections closer than ``radius``; keep the stronger lobe."""
    if not rows:
        return rows, np.zeros(0, bool)
    yx = np.array([(r[0], r[1]) for r in rows], float)
    sign = np.sign([r[2] for r in rows])
    strength = np.abs([r[2] for r in rows])
    drop = np.zeros(len(rows), bool)
    dipole = np.zeros(len(rows), bool)
    for i in np.argsort(-strength):
        if drop[i]:
            continue
        dist = np.hypot(*(yx - yx[i]).T)
        partners = np.flatnonzero((dist <= radius) & (sign != sign[i]) & ~drop)
        if partners.size:
            dipole[i] = True
            drop[partners] = True
            merged = [rows[i][3]] + [rows[j][3] for j in partners]
            box = (
                min(b[0] for b in merged),
                min(b[1] for b in merged),
                max(b[2] for b in merged),
                max(b[3] for b in merged),
            )
            npix = rows[i][4] + sum(rows[j][4] for j in partners)
            rows[i] = (rows[i][0], rows[i][1], rows[i][2], box, npix)
    keep = np.flatnonzero(~drop)
    return [rows[k] for k in keep], dipole[keep]
