"""Exposure FITS round trip: planes, WCS, PSF and metadata come back as written."""

from pathlib import Path

import numpy as np
from astropy.wcs import WCS

from shutterline.images import Exposure, MaskBit, read_exposure, write_exposure


def _wcs() -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [100.5, 200.5]
    wcs.wcs.cd = [[-7.3e-5, 0.0], [0.0, 7.3e-5]]
    return wcs


def test_round_trip_keeps_planes_wcs_psf_and_long_metadata_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    shape = (40, 30)
    psf = rng.random((11, 11)).astype(np.float32)
    exp = Exposure(
        image=rng.normal(size=shape).astype(np.float32),
        mask=np.where(rng.random(shape) < 0.1, int(MaskBit.CR), 0).astype(np.int32),
        variance=rng.random(shape).astype(np.float32),
        wcs=_wcs(),
        psf=psf / psf.sum(),
        metadata={"VISIT": 100001, "BAND": "r", "NJY_PER_UNIT": 0.8125, "PSF_FWHM": 4.2},
    )
    write_exposure(exp, tmp_path / "e.fits")
    back = read_exposure(tmp_path / "e.fits")
    np.testing.assert_array_equal(back.image, exp.image)
    np.testing.assert_array_equal(back.mask, exp.mask)
    np.testing.assert_array_equal(back.variance, exp.variance)
    np.testing.assert_allclose(back.psf, exp.psf)
    assert back.metadata["NJY_PER_UNIT"] == 0.8125
    assert back.metadata["VISIT"] == 100001 and back.metadata["BAND"] == "r"
    assert back.wcs is not None
    ra, dec = back.wcs.all_pix2world([12.0], [7.0], 0)
    ra0, dec0 = exp.wcs.all_pix2world([12.0], [7.0], 0)  # type: ignore[union-attr]
    assert abs(ra[0] - ra0[0]) < 1e-10 and abs(dec[0] - dec0[0]) < 1e-10
