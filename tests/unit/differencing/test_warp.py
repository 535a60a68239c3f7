"""Warping: flux and position kept, variance propagated, masks OR-ed, patches stitched."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS, Sip

from shutterline.differencing import warp
from shutterline.images import Exposure, MaskBit
from tests.unit.differencing import synth

SHAPE = (300, 200)


def _source(rng: np.random.Generator, n: int = 40) -> tuple[Exposure, np.ndarray, np.ndarray]:
    """A 0.2 arcsec/pixel exposure with isolated stars; returns it and their (ra, dec)."""
    shape = (460, 320)
    wcs = synth.tan_wcs(150.0, 2.0, shape, synth.TPL_SCALE)
    gx, gy = np.meshgrid(np.linspace(40, shape[1] - 40, 5), np.linspace(40, shape[0] - 40, 8))
    x = gx.ravel() + rng.uniform(-0.5, 0.5, gx.size)
    y = gy.ravel() + rng.uniform(-0.5, 0.5, gy.size)
    image = synth.render(shape, x, y, np.full(x.size, 1e4), 4.0)
    exp = Exposure(
        image=image,
        mask=np.zeros(shape, np.int32),
        variance=np.ones(shape, np.float32),
        wcs=wcs,
        psf=synth.gaussian_psf(4.0),
        metadata={"PSF_FWHM": 4.0},
    )
    ra, dec = wcs.all_pix2world(x, y, 0)
    return exp, np.asarray(ra), np.asarray(dec)


def _dst_wcs(rot: float = 0.7):  # type: ignore[no-untyped-def]
    return synth.tan_wcs(150.0003, 2.0002, SHAPE, synth.SCI_SCALE, rot)


@pytest.mark.parametrize("kernel", ["lanczos3", "bilinear"])
def test_flux_and_position_are_kept(kernel: str) -> None:
    src, ra, dec = _source(np.random.default_rng(1))
    before = src.image.copy()
    dst = _dst_wcs()
    out = warp.warp_exposure(src, dst, SHAPE, kernel=kernel)
    np.testing.assert_array_equal(src.image, before)
    x, y = dst.all_world2pix(ra, dec, 0)
    # The source pixels integrate the profile over 0.2 arcsec boxes, the rendering over
    # 0.263 arcsec ones: a box adds width**2 / 12 to the variance, so compensate.
    sigma2 = (4.0 * synth.FWHM_TO_SIGMA * synth.TPL_SCALE) ** 2
    sigma2 += (synth.TPL_SCALE**2 - synth.SCI_SCALE**2) / 12
    fwhm = np.sqrt(sigma2) / synth.FWHM_TO_SIGMA / synth.SCI_SCALE
    truth = synth.render(SHAPE, x, y, np.full(x.size, 1e4), fwhm)
    inside = (x > 12) & (x < SHAPE[1] - 12) & (y > 12) & (y < SHAPE[0] - 12)
    assert inside.sum() > 10
    for xi, yi in zip(x[inside], y[inside], strict=True):
        cy, cx = round(yi), round(xi)
        got = out.image[cy - 8 : cy + 9, cx - 8 : cx + 9]
        want = truth[cy - 8 : cy + 9, cx - 8 : cx + 9]
        # Bilinear interpolation of a coarser resampling does not keep the sum exactly.
        assert got.sum() == pytest.approx(1e4, rel=2e-3 if kernel == "lanczos3" else 0.02)
        # Lanczos keeps the profile to a fraction of a percent of the peak; bilinear smooths.
        tol = 0.01 if kernel == "lanczos3" else 0.08
        assert np.abs(got - want).max() < tol * want.max()
        yy, xx = np.mgrid[cy - 8 : cy + 9, cx - 8 : cx + 9]
        pos_tol = 0.01 if kernel == "lanczos3" else 0.03
        assert (got * xx).sum() / got.sum() == pytest.approx(xi, abs=pos_tol)
        assert (got * yy).sum() / got.sum() == pytest.approx(yi, abs=pos_tol)


def test_variance_matches_noise_of_warped_noise() -> None:
    rng = np.random.default_rng(2)
    shape = (460, 320)
    src = Exposure(
        image=rng.normal(size=shape).astype(np.float32) * 3.0,
        mask=np.zeros(shape, np.int32),
        variance=np.full(shape, 9.0, np.float32),
        wcs=synth.tan_wcs(150.0, 2.0, shape, synth.TPL_SCALE),
    )
    out = warp.warp_exposure(src, _dst_wcs(), SHAPE)
    good = out.mask == 0
    pull = out.image[good] / np.sqrt(out.variance[good])
    assert good.sum() > 0.8 * good.size
    assert np.std(pull) == pytest.approx(1.0, abs=0.03)


def test_mask_or_and_no_data_outside() -> None:
    src, _, _ = _source(np.random.default_rng(3))
    src.mask[200, 160] = int(MaskBit.CR)
    src.mask[:, 300:] |= int(MaskBit.NO_DATA)
    big = (400, 260)  # larger than the source footprint
    dst = synth.tan_wcs(150.0, 2.0, big, synth.SCI_SCALE)
    out = warp.warp_exposure(src, dst, big)
    ra, dec = src.wcs.all_pix2world([160.0], [200.0], 0)  # type: ignore[union-attr]
    x, y = dst.all_world2pix(ra, dec, 0)
    near = out.mask[int(y[0]) - 1 : int(y[0]) + 2, int(x[0]) - 1 : int(x[0]) + 2]
    assert (near & int(MaskBit.CR)).any()
    assert ((out.mask & int(MaskBit.CR)) != 0).sum() <= 4
    no_data = (out.mask & int(MaskBit.NO_DATA)) != 0
    assert no_data[0, :].all() and no_data[-1, :].all()
    assert not no_data[150, 100]
    assert np.all(out.image[no_data] == 0)


def test_patches_stitch_without_seam() -> None:
    rng = np.random.default_rng(4)
    field = synth.make_field(rng, SHAPE, n_stars=60)
    patches = synth.make_template_patches(rng, field, 1.0, n_patches=3, overlap=30)
    whole = synth.make_template_patches(np.random.default_rng(5), field, 1.0, n_patches=1)
    # Same sky and noise-free comparison: give the single patch the stitched patches' pixels.
    out = warp.warp_patches(patches, field.wcs, SHAPE)
    ref = warp.warp_exposure(whole[0], field.wcs, SHAPE)
    good = (out.mask == 0) & (ref.mask == 0)
    assert good.mean() > 0.9
    resid = (out.image - ref.image)[good] / np.sqrt(out.variance[good] + ref.variance[good])
    # Independent noise realisations: the difference is pure noise, no seam excess.
    assert np.std(resid) == pytest.approx(1.0, abs=0.1)
    assert np.abs(resid).max() < 6


def test_psf_is_resampled_to_output_scale() -> None:
    src, _, _ = _source(np.random.default_rng(6))
    out = warp.warp_exposure(src, _dst_wcs(), SHAPE)
    assert out.psf is not None
    assert out.psf.sum() == pytest.approx(1.0, abs=1e-5)
    k = out.psf.shape[0]
    yy, xx = np.mgrid[:k, :k] - k // 2
    sigma = np.sqrt((out.psf * (xx**2 + yy**2)).sum() / 2)
    want = 4.0 * synth.FWHM_TO_SIGMA * synth.TPL_SCALE / synth.SCI_SCALE
    assert sigma == pytest.approx(want, rel=0.03)
    assert out.metadata["PSF_FWHM"] == pytest.approx(4.0 * synth.TPL_SCALE / synth.SCI_SCALE)


def test_errors_name_the_problem() -> None:
    src, _, _ = _source(np.random.default_rng(7))
    with pytest.raises(ValueError, match="unknown warp kernel 'cubic'"):
        warp.warp_exposure(src, _dst_wcs(), SHAPE, kernel="cubic")
    src.wcs = None
    with pytest.raises(ValueError, match="without a WCS"):
        warp.warp_exposure(src, _dst_wcs(), SHAPE)
    with pytest.raises(ValueError, match="no patches"):
        warp.warp_patches([], _dst_wcs(), SHAPE)


def _reference_lanczos3(src: Exposure, dst_wcs, y: np.ndarray, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The slow reference: exact source positions through both WCSs, Lanczos-3 weights from
    sines, the Jacobian from finite differences; one output pixel at a time."""
    assert src.wcs is not None
    ra, dec = dst_wcs.all_pix2world(x, y, 0)
    v, u = src.wcs.all_world2pix(ra, dec, 0)
    ra1, dec1 = dst_wcs.all_pix2world([x[0], x[0] + 1.0, x[0]], [y[0], y[0], y[0] + 1.0], 0)
    v1, u1 = src.wcs.all_world2pix(ra1, dec1, 0)
    jac = abs((u1[2] - u1[0]) * (v1[1] - v1[0]) - (u1[1] - u1[0]) * (v1[2] - v1[0]))
    out = np.empty(x.size)
    for k in range(x.size):
        iu, iv = int(np.floor(u[k])), int(np.floor(v[k]))
        taps = np.arange(-2, 4)
        wy = np.sinc(u[k] - iu - taps) * np.sinc((u[k] - iu - taps) / 3)
        wx = np.sinc(v[k] - iv - taps) * np.sinc((v[k] - iv - taps) / 3)
        window = src.image[iu - 2 : iu + 4, iv - 2 : iv + 4].astype(np.float64)
        out[k] = (wy / wy.sum()) @ window @ (wx / wx.sum()) * jac
    return out


def test_compiled_warp_matches_the_slow_reference() -> None:
    """The compiled kernel (coarse map grid, tabulated weights) against exact evaluation."""
    src, _, _ = _source(np.random.default_rng(5))
    src.image += np.random.default_rng(6).normal(0.0, 5.0, src.shape).astype(np.float32)
    dst = _dst_wcs(rot=3.0)
    out = warp.warp_exposure(src, dst, SHAPE)
    rng = np.random.default_rng(7)
    y = rng.integers(10, SHAPE[0] - 10, 300).astype(float)
    x = rng.integers(10, SHAPE[1] - 10, 300).astype(float)
    want = _reference_lanczos3(src, dst, y, x)
    got = out.image[y.astype(int), x.astype(int)]
    # Map error <= MAP_TOLERANCE px and weight tables 1/8192 px apart: far below the noise.
    np.testing.assert_allclose(got, want, atol=0.02, rtol=2e-3)


def _sip_wcs(shape: tuple[int, int], strength: float) -> WCS:
    """A science-like TAN-SIP WCS whose distortion moves pixels 512 px from the reference
    pixel by about ``strength`` pixels (its curvature does not depend on ``shape``)."""
    wcs = synth.tan_wcs(150.0003, 2.0002, shape, synth.SCI_SCALE, 88.0)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    r = 512.0
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[2, 0], a[0, 2], a[3, 0] = 0.6 * strength / r**2, -0.3 * strength / r**2, 0.4 * strength / r**3
    b[1, 1], b[0, 3], b[2, 1] = 0.5 * strength / r**2, -0.4 * strength / r**3, 0.3 * strength / r**3
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    return wcs


def _exact_map(src_wcs: WCS, dst_wcs: WCS, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    ra, dec = dst_wcs.all_pix2world(x, y, 0)
    v, u = src_wcs.all_world2pix(ra, dec, 0, tolerance=1e-8)
    return np.stack([u, v])


def _interpolated_map(pmap: warp.PixelMap) -> np.ndarray:
    """Every pixel of the region, interpolated from the grid as the compiled loop does."""
    y0, x0, y1, x1, step = pmap.origin
    gy = (np.arange(y0, y1) - y0) / step
    gx = (np.arange(x0, x1) - x0) / step
    j = np.minimum(gy.astype(int), pmap.u.shape[0] - 2)
    i = gx.astype(int)
    fy, fx = (gy - j)[:, None], (gx - i)[None, :]
    out = []
    for grid in (pmap.u, pmap.v):
        rows = grid[j] * (1.0 - fy) + grid[j + 1] * fy
        out.append(rows[:, i] * (1.0 - fx) + rows[:, i + 1] * fx)
    return np.stack(out)


def test_pixel_map_on_a_sip_field_is_within_0_005_px_everywhere() -> None:
    """The coarse grid plus bilinear interpolation, checked at every output pixel."""
    shape = (1024, 512)
    dst = _sip_wcs(shape, strength=4.0)
    src = synth.tan_wcs(150.0, 2.0, (1400, 800), synth.TPL_SCALE)
    region = (0, 0, *shape)
    pmap = warp.pixel_map(src, dst, region)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    exact = _exact_map(src, dst, yy, xx)
    error = float(np.abs(_interpolated_map(pmap) - exact).max())
    assert error < 0.005, error
    # The field is distorted enough for the grid to matter: the coarsest grid misses.
    coarse = warp._grid(src, dst, region, 128)
    coarse_map = warp.PixelMap(coarse[0], coarse[1], (*region, 128), pmap.jacobian)
    assert warp._MIN_STEP < pmap.origin[4] < 128
    assert float(np.abs(_interpolated_map(coarse_map) - exact).max()) > 0.005


def _lanczos3(frac: float) -> np.ndarray:
    """Normalised exact Lanczos-3 weights of the taps ``floor - 2 ... floor + 3``."""
    d = frac - np.arange(-2, 4)
    w = np.sinc(d) * np.sinc(d / 3.0)
    return np.asarray(w / w.sum())


def _reference_pixel(src: Exposure, u: float, v: float, jac: float) -> tuple[float, float, int]:
    """Image, variance and mask of one output pixel at source ``(u, v)``, by the definitions
    in the module docstring (taps without data left out, weights renormalised)."""
    no_data = int(MaskBit.NO_DATA)
    iu, iv = int(np.floor(u)), int(np.floor(v))
    if iu < 0 or iv < 0 or iu + 1 >= src.shape[0] or iv + 1 >= src.shape[1]:
        return 0.0, 0.0, no_data
    m = int(np.bitwise_or.reduce(src.mask[iu : iu + 2, iv : iv + 2].ravel()))
    if m & no_data:
        return 0.0, 0.0, m
    wy, wx = _lanczos3(u - iu), _lanczos3(v - iv)
    rows, cols = np.arange(iu - 2, iu + 4), np.arange(iv - 2, iv + 4)
    inside = ((rows >= 0) & (rows < src.shape[0]))[:, None] & ((cols >= 0) & (cols < src.shape[1]))
    r, c = np.clip(rows, 0, src.shape[0] - 1), np.clip(cols, 0, src.shape[1] - 1)
    valid = inside & ((src.mask[np.ix_(r, c)] & no_data) == 0)
    w = np.outer(wy, wx) * valid
    if w.sum() < 0.5:
        return 0.0, 0.0, no_data
    fu, fv = u - iu, v - iv
    var4 = src.variance[iu : iu + 2, iv : iv + 2].astype(np.float64)
    var = (1 - fu) * ((1 - fv) * var4[0, 0] + fv * var4[0, 1]) + fu * (
        (1 - fv) * var4[1, 0] + fv * var4[1, 1]
    )
    image = float((w * src.image[np.ix_(r, c)]).sum() / w.sum() * jac)
    variance = var * (wy**2).sum() * (wx**2).sum() / w.sum() ** 2 * jac**2
    return image, float(variance), m


def test_sip_warp_matches_the_exact_reference_in_every_plane() -> None:
    """Onto a SIP-distorted science grid: image, variance and mask at 600 pixels (stars, edges,
    masked and no-data pixels) against exact positions and exact Lanczos weights."""
    shape = (260, 360)  # the source (rotated by 88 degrees) covers most of it, edges included
    dst = _sip_wcs(shape, strength=4.0)
    src, _, _ = _source(np.random.default_rng(11))
    rng = np.random.default_rng(12)
    src.image += rng.normal(0.0, 5.0, src.shape).astype(np.float32)
    src.variance = (25.0 + np.abs(src.image) / 10.0).astype(np.float32)
    src.mask[100:106, 60:70] |= int(MaskBit.CR)
    src.mask[:, 250:262] |= int(MaskBit.NO_DATA)
    src.mask[300, 100] |= int(MaskBit.NO_DATA)
    out = warp.warp_exposure(src, dst, shape)
    jac = abs(float(np.linalg.det(warp.pixel_map(src.wcs, dst, (0, 0, *shape)).jacobian)))
    y = rng.integers(0, shape[0], 600)
    x = rng.integers(0, shape[1], 600)
    u, v = _exact_map(src.wcs, dst, y.astype(float), x.astype(float))
    # Within 0.005 px of a pixel edge the 2 x 2 mask taps may differ by the map's error.
    keep = (np.abs(u - np.round(u)) > 0.005) & (np.abs(v - np.round(v)) > 0.005)
    pairs = zip(u[keep], v[keep], strict=True)
    ref = np.array([_reference_pixel(src, a, b, jac) for a, b in pairs])
    y, x = y[keep], x[keep]
    assert keep.sum() > 550 and (ref[:, 2].astype(int) & int(MaskBit.NO_DATA)).sum() > 20
    np.testing.assert_array_equal(out.mask[y, x], ref[:, 2].astype(np.int32))
    assert (ref[:, 0] != 0).sum() > 300
    # Map and weight-table errors (< 0.005 px) times the gradient: 1 % of the noise (5).
    np.testing.assert_allclose(out.image[y, x], ref[:, 0], atol=0.05, rtol=2e-3)
    np.testing.assert_allclose(out.variance[y, x], ref[:, 1], atol=1e-3, rtol=2e-3)
