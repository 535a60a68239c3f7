"""Sky background: a sep mesh model, evaluated once and subtracted."""

from __future__ import annotations

import dataclasses

import numpy as np
import sep

from shutterline.images import mask as mask_mod

__all__ = ["BAD_BITS", "BackgroundModel", "bad_pixel_mask", "estimate_background"]

# Pixels whose values say nothing about the sky or a source: never used for statistics.
BAD_BITS = int(
    mask_mod.MaskBit.BAD | mask_mod.MaskBit.SAT | mask_mod.MaskBit.CR | mask_mod.MaskBit.NO_DATA
)


@dataclasses.dataclass(frozen=True)
class BackgroundModel:
    """A smooth sky model of one image.

    Attributes
    ----------
    array : numpy.ndarray
        ``(ny, nx)`` float32 background in image units (electrons after ISR).
    global_level : float
        Global (sigma-clipped) background level, image units.
    global_rms : float
        Global background noise, image units.
    mesh_size : int
        Mesh (box) size in pixels used for the local statistics.
    filter_size : int
        Size, in meshes, of the median filter applied to the mesh values.
    """

    array: np.ndarray
    global_level: float
    global_rms: float
    mesh_size: int
    filter_size: int

    def evaluate(self) -> np.ndarray:
        """Return the ``(ny, nx)`` float32 background (the stored array, not a copy)."""
        return self.array


def bad_pixel_mask(mask: np.ndarray, bits: int = BAD_BITS) -> np.ndarray:
    """``(ny, nx)`` bool: pixels of ``mask`` that carry any of ``bits``."""
    return (mask & bits) != 0


def estimate_background(
    image: np.ndarray,
    bad: np.ndarray | None = None,
    *,
    mesh_size: int = 128,
    filter_size: int = 3,
) -> BackgroundModel:
    """Estimate the sky of ``image`` on a ``mesh_size`` grid, masked pixels excluded.

    sep computes a sigma-clipped mode per mesh, median-filters the mesh and interpolates it
    with a bicubic spline; the full-resolution model is evaluated once, in float32.

    Parameters
    ----------
    image : numpy.ndarray
        ``(ny, nx)`` float32 image, electrons.
    bad : numpy.ndarray, optional
        ``(ny, nx)`` bool, True where a pixel must not enter the statistics.
    mesh_size : int
        Box size in pixels (square meshes).
    filter_size : int
        Median filter size in meshes.

    Returns
    -------
    BackgroundModel
    """
    data = np.ascontiguousarray(image, dtype=np.float32)
    bkg = sep.Background(data, mask=bad, bw=mesh_size, bh=mesh_size, fw=filter_size, fh=filter_size)
    return BackgroundModel(
        array=bkg.back(dtype=np.float32),
        global_level=float(bkg.globalback),
        global_rms=float(bkg.globalrms),
        mesh_size=mesh_size,
        filter_size=filter_size,
    )
