"""Exposure FITS round trip: planes, WCS, PSF and metadata come back as written."""

from pathlib import Path
from typing import Any

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
    assert back.psf is not None and exp.psf is not None
    np.testing.assert_allclose(back.psf, exp.psf)
    assert back.metadata["NJY_PER_UNIT"] == 0.8125
    assert back.metadata["VISIT"] == 100001 and back.metadata["BAND"] == "r"
    assert back.wcs is not None
    ra, dec = back.wcs.all_pix2world([12.0], [7.0], 0)
    ra0, dec0 = exp.wcs.all_pix2world([12.0], [7.0], 0)  # type: ignore[union-attr]
    assert abs(ra[0] - ra0[0]) < 1e-10 and abs(dec[0] - dec0[0]) < 1e-10


def _write_as_before(exposure: Exposure, path: Path) -> None:
    """`write_exposure` before it wrote big-endian copies: native copies astropy swapped."""
    from astropy.io import fits

    from shutterline.images import exposure as exposure_mod

    header = exposure_mod._header(exposure)
    hdus: list = [fits.PrimaryHDU(header=fits.Header(header))]
    hdus.append(fits.ImageHDU(exposure.image.astype(np.float32), header, name="IMAGE"))
    mask_header = fits.Header(header)
    for bit in MaskBit:
        mask_header[f"MP_{bit.name}"[:8]] = (bit.bit_length() - 1, f"mask plane {bit.name}")
    hdus.append(fits.ImageHDU(exposure.mask.astype(np.int32), mask_header, name="MASK"))
    hdus.append(fits.ImageHDU(exposure.variance.astype(np.float32), header, name="VARIANCE"))
    if exposure.psf is not None:
        hdus.append(fits.ImageHDU(exposure.psf.astype(np.float32), name="PSF"))
    fits.HDUList(hdus).writeto(path, overwrite=True)


def test_written_bytes_equal_the_earlier_writer_and_inputs_stay_untouched(tmp_path: Path) -> None:
    """The same file, byte for byte, as before, from native, big-endian, float64 and
    non-contiguous planes; the exposure's own arrays are not modified (not even swapped)."""
    rng = np.random.default_rng(5)
    padded = rng.normal(size=(50, 45)).astype(np.float32)
    cases: dict[str, tuple[np.ndarray, Any]] = {
        "native": (rng.normal(size=(40, 30)).astype(np.float32), np.int32),
        "big-endian": (rng.normal(size=(40, 30)).astype(">f4"), ">i4"),
        "float64": (rng.normal(size=(40, 30)), np.int64),
        "view": (padded[:40, :30], np.int32),
    }
    for name, (image, mask_dtype) in cases.items():
        mask = np.where(rng.random(image.shape) < 0.2, int(MaskBit.SAT), 0).astype(mask_dtype)
        exp = Exposure(image, mask, np.abs(image) + 1.0, wcs=_wcs(), psf=np.ones((5, 5)) / 25.0,
                       metadata={"VISIT": 7, "NJY_PER_UNIT": 0.5})  # fmt: skip
        copies = [p.copy() for p in (exp.image, exp.mask, exp.variance)]
        write_exposure(exp, tmp_path / f"{name}.fits")
        _write_as_before(exp, tmp_path / f"{name}-before.fits")
        new, old = ((tmp_path / f).read_bytes() for f in (f"{name}.fits", f"{name}-before.fits"))
        assert new == old, name
        for plane, copy in zip((exp.image, exp.mask, exp.variance), copies, strict=True):
            assert plane.dtype == copy.dtype and np.array_equal(plane, copy), name
