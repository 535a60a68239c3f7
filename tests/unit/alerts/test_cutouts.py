"""FITS cutouts: standard FITS, the right pixels, a WCS that puts the source where it is."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from shutterline.alerts import cutouts
from shutterline.images import MaskBit
from tests.unit.association import synthetic

SHAPE = (120, 100)


@pytest.fixture
def exposure():
    rng = np.random.default_rng(7)
    exp = synthetic.make_exposure(SHAPE, np.array([50.0]), np.array([60.0]), np.array([5e3]))
    exp.mask[:] = rng.integers(0, 4, SHAPE, dtype=np.int32)
    exp.variance[:] = rng.uniform(50, 150, SHAPE).astype(np.float32)
    exp.metadata.update({"VISIT": 3, "DETECTOR": 7, "BAND": "r", "MJD": 60000.5})
    exp.metadata.update({"BUNIT": "nJy", "NJY_PER_UNIT": 1.0})  # as a difference image
    return exp


def _open(data: bytes) -> fits.HDUList:
    hdul = fits.open(io.BytesIO(data))
    hdul.verify("exception")
    return hdul


def test_cutout_is_valid_fits_with_planes_and_psf(exposure):
    ra, dec = exposure.wcs.all_pix2world(50.3, 60.8, 0)
    with _open(cutouts.make_cutout(exposure, float(ra), float(dec))) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE", "PSF"]
        assert hdul["IMAGE"].data.shape == (30, 30) and hdul["IMAGE"].data.dtype.kind == "f"
        assert hdul["MASK"].data.dtype.kind == "i"
        assert hdul["IMAGE"].header["BUNIT"] == "nJy"
        assert hdul[0].header["VISIT"] == 3
        np.testing.assert_array_equal(hdul["PSF"].data, exposure.psf)


def test_cutout_pixels_and_wcs_match_the_exposure(exposure):
    x, y = 50.3, 60.8
    ra, dec = exposure.wcs.all_pix2world(x, y, 0)
    with _open(cutouts.make_cutout(exposure, float(ra), float(dec))) as hdul:
        x0, y0 = 50 - 15, 61 - 15
        win = np.s_[y0 : y0 + 30, x0 : x0 + 30]
        np.testing.assert_array_equal(hdul["IMAGE"].data, exposure.image[win])
        np.testing.assert_array_equal(hdul["MASK"].data, exposure.mask[win])
        np.testing.assert_array_equal(hdul["VARIANCE"].data, exposure.variance[win])
        wcs = WCS(hdul["IMAGE"].header)
        cx, cy = wcs.all_world2pix(ra, dec, 0)
        assert float(cx) == pytest.approx(x - x0, abs=1e-6)
        assert float(cy) == pytest.approx(y - y0, abs=1e-6)
        # The source is in the central pixels: the peak is at the cutout centre.
        peak = np.unravel_index(np.argmax(hdul["IMAGE"].data), (30, 30))
        assert abs(peak[0] - cy) <= 1 and abs(peak[1] - cx) <= 1


def test_cutout_beyond_edge_is_padded_with_nan_and_no_data(exposure):
    ra, dec = exposure.wcs.all_pix2world(2.0, 118.0, 0)
    with _open(cutouts.make_cutout(exposure, float(ra), float(dec))) as hdul:
        image, mask = hdul["IMAGE"].data, hdul["MASK"].data
        assert image.shape == (30, 30)
        # Columns left of x=0 and rows above y=119 are outside.
        assert np.isnan(image[:, :13]).all() and np.isnan(image[17:, :]).all()
        assert (mask[:, :13] == int(MaskBit.NO_DATA)).all()
        np.testing.assert_array_equal(image[:17, 13:], exposure.image[103:, :17])


def test_cutout_with_distortion_keeps_the_distortion(exposure):
    header = exposure.wcs.to_header()
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    header.update({"A_ORDER": 2, "B_ORDER": 2, "A_2_0": 2e-5, "B_0_2": -1e-5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exposure.wcs = WCS(header)
    ra, dec = exposure.wcs.all_pix2world(80.0, 20.0, 0)
    with _open(cutouts.make_cutout(exposure, float(ra), float(dec))) as hdul:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(hdul["IMAGE"].header)
        cx, cy = wcs.all_world2pix(ra, dec, 0)
        assert (float(cx), float(cy)) == pytest.approx((15.0, 15.0), abs=1e-6)


def test_exposure_without_wcs_is_refused(exposure):
    exposure.wcs = None
    with pytest.raises(ValueError, match="WCS"):
        cutouts.make_cutout(exposure, 150.0, 2.0)


def test_a_calexp_in_electrons_is_cut_out_in_njy(exposure):
    exposure.metadata.update({"BUNIT": "electron", "NJY_PER_UNIT": 2.5})
    ra, dec = exposure.wcs.all_pix2world(50.0, 60.0, 0)
    with _open(cutouts.make_cutout(exposure, float(ra), float(dec))) as hdul:
        assert hdul["IMAGE"].header["BUNIT"] == "nJy"
        x0, y0 = 50 - 15, 60 - 15
        np.testing.assert_allclose(
            hdul["IMAGE"].data, 2.5 * exposure.image[y0 : y0 + 30, x0 : x0 + 30], rtol=1e-6
        )
        np.testing.assert_allclose(
            hdul["VARIANCE"].data, 6.25 * exposure.variance[y0 : y0 + 30, x0 : x0 + 30], rtol=1e-6
        )
