"""Resample an exposure (or overlapping template patches) onto another WCS pixel grid.

The output-to-source pixel map is computed exactly (through the two WCSs) on a coarse grid of
output pixels and interpolated bilinearly in between: the TAN-to-TAN map is so smooth that the
grid step is chosen to keep the interpolation error under ``MAP_TOLERANCE`` pixels (checked at
the cell centres, the worst place for bilinear interpolation). The pixels are then resampled
with a normalised Lanczos kernel in one compiled loop (`_resample`).

Planes:

- image: ``sum(w * src) / sum(w) * J``, with ``J`` the output pixel area over the source pixel
  area, so that a sum over pixels keeps the flux (images are per-pixel fluxes, e.g. nJy);
- variance: ``sum(w**2 * var) / sum(w)**2 * J**2``, the per-pixel variance for independent
  source pixels, with ``var`` interpolated bilinearly (exact where the variance is constant
  over the taps; see `_resample`); the covariance the interpolation creates between
  neighbouring output pixels is not tracked (the difference image's noise is measured
  downstream, and flux errors are calibrated on empty sky);
- mask: OR of the 2 x 2 source pixels around the position; ``NO_DATA`` where those have no
  data or fall outside the source. Taps with no data are left out and the weights renormalised.

Pixel convention: ``(y, x)``, centre of the first pixel at 0.0 (astropy ``origin=0``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import numpy as np
from astropy.wcs import WCS
from scipy import ndimage

from shutterline.differencing import _resample
from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod

__all__ = ["MAP_TOLERANCE", "PixelMap", "pixel_map", "warp_exposure", "warp_patches", "warp_psf"]

#: Largest error (pixels) allowed for the interpolated pixel map.
MAP_TOLERANCE = 0.002
_MAX_STEP = 128
_MIN_STEP = 8


@dataclasses.dataclass(frozen=True)
class PixelMap:
    """Source pixel position of output pixels, sampled on a coarse grid.

    Attributes
    ----------
    u, v : numpy.ndarray
        ``(gny, gnx)`` float64 source row / column at output pixel
        ``(y0 + j * step, x0 + i * step)``; the last node may lie past the region.
    origin : tuple of int
        ``(y0, x0, y1, x1, step)``: the output region ``[y0, y1) x [x0, x1)``.
    jacobian : numpy.ndarray
        ``(2, 2)`` d(u, v) / d(y, x) at the region centre.
    """

    u: np.ndarray
    v: np.ndarray
    origin: tuple[int, int, int, int, int]
    jacobian: np.ndarray


def _exact(src_wcs: WCS, dst_wcs: WCS, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Source ``(u, v)`` of output pixels ``(y, x)``: array ``(2, *y.shape)``."""
    ra, dec = dst_wcs.all_pix2world(x, y, 0)
    v, u = src_wcs.all_world2pix(ra, dec, 0)
    return np.stack([u, v])


def _grid(src_wcs: WCS, dst_wcs: WCS, region: tuple[int, int, int, int], step: int) -> np.ndarray:
    y0, x0, y1, x1 = region
    gy = y0 + step * np.arange(-(-(y1 - 1 - y0) // step) + 1)
    gx = x0 + step * np.arange(-(-(x1 - 1 - x0) // step) + 1)
    yy, xx = np.meshgrid(gy.astype(float), gx.astype(float), indexing="ij")
    return _exact(src_wcs, dst_wcs, yy, xx)


def _grid_error(grid: np.ndarray, src_wcs: WCS, dst_wcs: WCS, y0: int, x0: int, step: int) -> float:
    """Largest difference between bilinear interpolation and the exact map at cell centres."""
    if grid.shape[1] < 2 or grid.shape[2] < 2:
        return 0.0
    mid = 0.25 * (grid[:, :-1, :-1] + grid[:, 1:, :-1] + grid[:, :-1, 1:] + grid[:, 1:, 1:])
    gy = y0 + step * (np.arange(mid.shape[1]) + 0.5)
    gx = x0 + step * (np.arange(mid.shape[2]) + 0.5)
    yy, xx = np.meshgrid(gy, gx, indexing="ij")
    return float(np.max(np.abs(mid - _exact(src_wcs, dst_wcs, yy, xx))))


def pixel_map(src_wcs: WCS, dst_wcs: WCS, region: tuple[int, int, int, int]) -> PixelMap:
    """Coarse output-to-source pixel map over ``region = (y0, x0, y1, x1)`` of the output.

    The step halves from ``_MAX_STEP`` until bilinear interpolation of the grid is within
    `MAP_TOLERANCE` pixels of the exact map.
    """
    y0, x0, y1, x1 = region
    step = _MAX_STEP
    grid = _grid(src_wcs, dst_wcs, region, step)
    while step > _MIN_STEP and _grid_error(grid, src_wcs, dst_wcs, y0, x0, step) > MAP_TOLERANCE:
        step //= 2
        grid = _grid(src_wcs, dst_wcs, region, step)
    cy, cx = 0.5 * (y0 + y1 - 1), 0.5 * (x0 + x1 - 1)
    pts = _exact(
        src_wcs,
        dst_wcs,
        np.array([cy, cy + 1.0, cy, cy - 1.0, cy]),
        np.array([cx, cx, cx + 1.0, cx, cx - 1.0]),
    )
    jac = np.empty((2, 2))
    jac[:, 0] = 0.5 * (pts[:, 1] - pts[:, 3])
    jac[:, 1] = 0.5 * (pts[:, 2] - pts[:, 4])
    return PixelMap(grid[0], grid[1], (y0, x0, y1, x1, step), jac)


def _footprint(
    src: exposure_mod.Exposure, dst_wcs: WCS, dst_shape: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """Output region ``(y0, x0, y1, x1)`` covered by the source, or None if it misses."""
    sny, snx = src.shape
    u = np.array([0.0, 0.0, sny - 1.0, sny - 1.0, 0.0, 0.5 * sny, sny - 1.0, 0.5 * sny])
    v = np.array([0.0, snx - 1.0, 0.0, snx - 1.0, 0.5 * snx, 0.0, 0.5 * snx, snx - 1.0])
    assert src.wcs is not None
    ra, dec = src.wcs.all_pix2world(v, u, 0)
    x, y = dst_wcs.all_world2pix(ra, dec, 0)
    y0 = max(int(np.floor(y.min())) - 2, 0)
    x0 = max(int(np.floor(x.min())) - 2, 0)
    y1 = min(int(np.ceil(y.max())) + 3, dst_shape[0])
    x1 = min(int(np.ceil(x.max())) + 3, dst_shape[1])
    if y0 >= y1 or x0 >= x1:
        return None
    return (y0, x0, y1, x1)


def warp_psf(psf: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
    """PSF image on the output grid, given d(src)/d(dst) at the centre.

    Parameters
    ----------
    psf : numpy.ndarray
        ``(k, k)`` source-grid PSF image, odd ``k``.
    jacobian : numpy.ndarray
        ``(2, 2)`` d(u, v) / d(y, x).

    Returns
    -------
    numpy.ndarray
        ``(k', k')`` float32 PSF, odd ``k'`` covering the same sky area, summing to 1.
    """
    k = psf.shape[0]
    scale = float(np.sqrt(abs(np.linalg.det(jacobian))))
    half = max(int(np.ceil((k // 2) / scale)), 1)
    offs = np.arange(-half, half + 1, dtype=float)
    yy, xx = np.meshgrid(offs, offs, indexing="ij")
    u = jacobian[0, 0] * yy + jacobian[0, 1] * xx + k // 2
    v = jacobian[1, 0] * yy + jacobian[1, 1] * xx + k // 2
    out = ndimage.map_coordinates(psf.astype(np.float64), [u, v], order=3, mode="constant")
    out = np.clip(out, 0.0, None) if out.min() < -1e-3 * out.max() else out
    return (out / out.sum()).astype(np.float32)


def _check(src: exposure_mod.Exposure, kernel: str) -> int:
    if kernel not in _resample.KERNELS:
        raise ValueError(
            f"unknown warp kernel {kernel!r}; choose one of {sorted(_resample.KERNELS)}"
        )
    if src.wcs is None:
        raise ValueError("cannot warp an exposure without a WCS")
    return _resample.KERNELS[kernel]


@functools.cache
def _table(half: int) -> np.ndarray:
    return _resample.weight_table(half)


def warp_patches(
    patches: Sequence[exposure_mod.Exposure],
    dst_wcs: WCS,
    dst_shape: tuple[int, int],
    *,
    kernel: str = "lanczos3",
) -> exposure_mod.Exposure:
    """Resample overlapping exposures (template patches) onto one output grid.

    Where patches overlap, the first patch in which the pixel has full kernel support wins, so
    patch edges never leak in when a neighbour covers the pixel. Pixels no patch covers are
    ``NO_DATA`` (image and variance 0).

    Parameters
    ----------
    patches : sequence of Exposure
        Inputs with WCS; image in per-pixel flux units (e.g. nJy), variance in those squared.
    dst_wcs : astropy.wcs.WCS
        Output celestial WCS.
    dst_shape : tuple of int
        Output ``(ny, nx)``.
    kernel : str
        ``'lanczos3'`` (default), ``'lanczos2'`` or ``'bilinear'``.

    Returns
    -------
    Exposure
        ``(ny, nx)`` planes; ``psf`` (from the first patch that contributes, resampled to the
        output scale and orientation) and metadata carried over, ``PSF_FWHM`` rescaled.
    """
    if not patches:
        raise ValueError("no patches to warp")
    out = exposure_mod.Exposure.blank(dst_shape, wcs=dst_wcs)
    quality = np.zeros(dst_shape, np.uint8)
    no_data = int(mask_mod.MaskBit.NO_DATA)
    first: tuple[exposure_mod.Exposure, np.ndarray] | None = None
    for patch in patches:
        half = _check(patch, kernel)
        region = _footprint(patch, dst_wcs, dst_shape)
        if region is None:
            continue
        assert patch.wcs is not None
        pmap = pixel_map(patch.wcs, dst_wcs, region)
        det = abs(float(np.linalg.det(pmap.jacobian)))
        src_mask = np.ascontiguousarray(patch.mask, np.int32)
        _resample.resample_into(
            out.image, out.variance, out.mask, quality,
            np.ascontiguousarray(patch.image, np.float32),
            np.ascontiguousarray(patch.variance, np.float32),
            src_mask, _resample.dirty_blocks(src_mask, no_data),
            pmap.u, pmap.v, pmap.origin, (det, det * det), _table(half), no_data,
        )  # fmt: skip
        if first is None:
            first = (patch, pmap.jacobian)
    out.mask[quality == _resample.NO_TAPS] |= int(mask_mod.MaskBit.NO_DATA)
    if first is not None:
        _carry_over(first[0], first[1], out)
    return out


def _carry_over(
    src: exposure_mod.Exposure, jacobian: np.ndarray, out: exposure_mod.Exposure
) -> None:
    """PSF and metadata of the source onto the warped exposure."""
    out.metadata = dict(src.metadata)
    scale = float(np.sqrt(abs(np.linalg.det(jacobian))))
    if src.psf is not None:
        out.psf = warp_psf(src.psf, jacobian)
    if "PSF_FWHM" in out.metadata:
        out.metadata["PSF_FWHM"] = float(out.metadata["PSF_FWHM"]) / scale


def warp_exposure(
    src: exposure_mod.Exposure,
    dst_wcs: WCS,
    dst_shape: tuple[int, int],
    *,
    kernel: str = "lanczos3",
) -> exposure_mod.Exposure:
    """Resample one exposure onto the ``dst_wcs`` pixel grid of shape ``dst_shape``.

    See `warp_patches` (this is the one-patch case) and the module docstring for how each
    plane is propagated. The input is not modified.
    """
    return warp_patches([src], dst_wcs, dst_shape, kernel=kernel)
