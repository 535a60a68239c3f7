"""Sources near the border: detected and measured with a flag, not lost in the EDGE band."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.differencing import dia, subtract, warp
from shutterline.images import Exposure, MaskBit

from . import synth


def test_edge_width_follows_the_kernel_weight_not_its_half_width() -> None:
    q = np.arange(-15, 16)
    k = np.exp(-0.5 * (q[:, None] ** 2 + q[None, :] ** 2) / 2.0**2)  # sigma 2 px, half 15
    assert subtract.edge_width(k) == 5  # 1 % of a sigma-2 Gaussian lies beyond 2.33 sigma
    assert subtract.edge_width(k, lost=0.0) == 15
    lopsided = np.zeros((11, 11))
    lopsided[5, 5], lopsided[5, 10] = 1.0, 1.0  # half the weight 5 px off to one side
    assert subtract.edge_width(lopsided) == 5


@pytest.mark.parametrize(("fwhm_sci", "fwhm_tpl"), [(1.4, 0.7), (0.8, 1.3)])
def test_transients_inside_the_kernel_half_width_are_found_and_flagged(
    fwhm_sci: float, fwhm_tpl: float
) -> None:
    rng = np.random.default_rng(81)
    shape = (384, 320)
    field = synth.make_field(rng, shape, n_stars=60, flux_range=(2e3, 3e4))
    ny, nx = shape
    # 6 to 10 px in from the border, well apart (the synthetic template patches stop short of
    # the right-hand side, whose border is NO_DATA).
    y = np.array([60.0, 160.0, 260.0, 340.0, 7.0, 376.5, 9.0, 374.0, 6.5, 375.0])
    x = np.array([7.2, 9.0, 10.4, 6.6, 120.0, 200.0, 250.0, 60.0, 40.0, 130.0])
    fwhm_px = fwhm_sci / synth.SCI_SCALE
    flux = np.full(y.size, 40.0 * synth.point_sigma_njy(fwhm_px, 40.0))
    science = synth.make_science(rng, field, fwhm_px, extra=(x, y, flux))
    patches = synth.make_template_patches(rng, field, fwhm_tpl)
    template = warp.warp_patches(patches, field.wcs, shape)
    res = subtract.subtract(science, template)
    half = res.kernel.shape[0] // 2
    width = subtract.edge_width(res.kernel)
    assert width < 6 < half  # without the narrower band every one of them would be lost
    mask = res.difference.mask
    edge, suspect = (mask & int(MaskBit.EDGE)) != 0, (mask & int(MaskBit.SUSPECT)) != 0
    assert edge[:width].all() and not edge[width, ny // 2] and suspect[width:half, nx // 2].all()
    table = dia.detect_and_measure(res.difference, science, template)
    d = np.hypot(np.asarray(table["x"])[:, None] - x, np.asarray(table["y"])[:, None] - y)
    hit = d.min(axis=0) < 1.5
    assert hit.all(), f"missed near the edge: {list(zip(x[~hit], y[~hit], strict=True))}"
    rows = table[np.argmin(d, axis=0)]
    assert np.asarray(rows["pixel_flags_suspect"]).all()
    pull = (np.asarray(rows["psf_flux"]) - flux) / np.asarray(rows["psf_flux_err"])
    assert np.median(np.abs(pull)) < 3.0, pull


def _narrow_edge_reference(mask: np.ndarray, kernel: np.ndarray) -> None:
    """`subtract._narrow_edge` as it was: full-size band planes."""
    half, width = kernel.shape[0] // 2, subtract.edge_width(kernel)
    if width >= half:
        return
    band = np.zeros(mask.shape, bool)
    band[:half], band[-half:], band[:, :half], band[:, -half:] = True, True, True, True
    inner = np.ones(mask.shape, bool)
    if width:
        inner[:width], inner[-width:], inner[:, :width], inner[:, -width:] = (False,) * 4
    band &= inner
    mask[band] = (mask[band] & ~int(MaskBit.EDGE)) | int(MaskBit.SUSPECT)


@pytest.mark.parametrize("shape", [(120, 90), (30, 25), (12, 40)])
@pytest.mark.parametrize("sigma", [0.7, 1.5, 3.0, 6.0])
def test_narrow_edge_strips_match_the_full_size_reference(
    shape: tuple[int, int], sigma: float
) -> None:
    # Kernels from narrow (EDGE a few pixels wide) to as wide as the half-width (unchanged),
    # on images down to smaller than twice the half-width.
    r = np.arange(-10, 11)
    kernel = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma**2)
    rng = np.random.default_rng(int(sigma * 10) + shape[0])
    mask = rng.integers(0, 2**12, shape).astype(np.int32)
    mask[:10] |= int(MaskBit.EDGE)
    mask[-10:] |= int(MaskBit.EDGE)
    mask[:, :10] |= int(MaskBit.EDGE)
    mask[:, -10:] |= int(MaskBit.EDGE)
    fast, slow = mask.copy(), mask.copy()
    subtract._narrow_edge(fast, kernel)
    _narrow_edge_reference(slow, kernel)
    np.testing.assert_array_equal(fast, slow)
    if shape == (120, 90) and sigma < 3.0:
        assert (fast != mask).any()  # the band was narrowed


def test_template_without_data_is_refused_and_one_pixel_of_data_is_enough() -> None:
    exp = Exposure.blank((600, 40))
    blank = Exposure.blank((600, 40))
    blank.mask[:] = int(MaskBit.NO_DATA)
    with pytest.raises(ValueError, match="template has no data"):
        subtract._check_inputs(exp, blank)
    blank.mask[599, 39] = 0  # in the last band of rows
    subtract._check_inputs(exp, blank)
