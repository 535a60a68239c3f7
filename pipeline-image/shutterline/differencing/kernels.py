"""Compile the stages' numba kernels ahead of the first detector, to fill numba's cache.

numba compiles a kernel at its first call; ``cache=True`` then keeps the machine code in
``NUMBA_CACHE_DIR``. Importing the modules compiles nothing, so an image built by importing
them leaves every pod to compile the kernels again before its first warp (about 1-3 s of CPU
each, measured with an empty cache). `warm` runs the functions that call them on tiny inputs
of the dtypes the stages pass (float32 planes, int32 masks), so each kernel is compiled for
the signature the stages use.
"""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

from shutterline.differencing import detection, streaks, subtract, warp
from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod
from shutterline.isr import _amplifier, columns

__all__ = ["warm"]


def _tiny_exposure(shape: tuple[int, int]) -> exposure_mod.Exposure:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    wcs.wcs.cdelt = [-0.263 / 3600, 0.263 / 3600]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[-3:4, -3:4]
    psf = np.exp(-0.5 * (yy**2 + xx**2) / 1.5**2).astype(np.float32)
    return exposure_mod.Exposure(
        image=rng.normal(0.0, 1.0, shape).astype(np.float32),
        mask=np.zeros(shape, np.int32),
        variance=np.ones(shape, np.float32),
        wcs=wcs,
        psf=psf / psf.sum(),
    )


def warm() -> None:
    """Call every compiled kernel of the ISR's amplifier assembly and column search, the warp,
    the subtraction and DIA detection once.

    The difference image comes from `subtract.subtract` itself (matched to the PSF images:
    too few stars here), so its planes have the memory layout the stages pass on.
    """
    science = _tiny_exposure((256, 192))
    # A 16-bit raw's data section and the output planes as the assembly passes them: views.
    raw, planes, one = np.zeros((4, 8), np.uint16), np.zeros((2, 4, 8), np.float32), np.float32(1)
    _amplifier.fill(raw[:, 2:6], np.zeros(4, np.float32), one, one, *planes[:, :, :4])
    columns.misbehaving_columns(science.image, science.variance, science.mask)
    science.mask[:4] |= int(mask_mod.MaskBit.NO_DATA)  # the warp's and the masks' checked paths
    science.metadata["NJY_PER_UNIT"] = 1.0
    assert science.wcs is not None
    template = warp.warp_patches([science], science.wcs, science.shape)
    template.metadata["NJY_PER_UNIT"] = 1.0
    diff = subtract.subtract(science, template).difference
    detection.detect(diff)  # the matched filter and the footprints' labelling
    streaks.find_streaks(diff.image, diff.variance, diff.mask, 3.0)
