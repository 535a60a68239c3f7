"""The fast exposure reader (`shutterline.images.fitsread`) against astropy's route.

`read_exposure` reads planes and WCS cards from the file's bytes; `read_exposure_astropy`
is the slow reference it replaced. These hold them equal: planes bit for bit and native, the
WCS identical on a SIP-distorted field with time and frame keys, metadata the same, and the
files it does not write itself (other types, scaled planes) still read through astropy.
"""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from shutterline.images import exposure as exposure_io
from shutterline.images import fitsread
from shutterline.images.mask import MaskBit

SHAPE = (301, 257)  # a plane of 309 428 bytes: two whole chunks and a ragged third


def _sip_wcs() -> WCS:
    """A TAN-SIP WCS whose distortion moves a corner by arcseconds, with frame and time keys."""
    header = fits.Header()
    header.update(
        {
            "CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "CRVAL1": 150.1, "CRVAL2": -2.3,
            "CRPIX1": 120.5, "CRPIX2": 160.5, "CD1_1": -7.3e-5, "CD1_2": 1.1e-6,
            "CD2_1": -0.9e-6, "CD2_2": 7.3e-5, "A_ORDER": 3, "B_ORDER": 3, "A_2_0": 2.1e-4,
            "A_1_1": -1.3e-4, "A_0_2": 0.8e-4, "A_3_0": 4.0e-7, "A_1_2": -2.5e-7,
            "B_2_0": -0.7e-4, "B_1_1": 1.9e-4, "B_0_2": -1.2e-4, "B_0_3": 3.1e-7,
            "B_2_1": 1.7e-7, "AP_ORDER": 2, "BP_ORDER": 2, "AP_2_0": -2.1e-4, "AP_0_2": -0.8e-4,
            "BP_2_0": 0.7e-4, "BP_0_2": 1.2e-4, "RADESYS": "FK5", "EQUINOX": 2000.0,
            "DATE-OBS": "2026-03-01T03:12:45.123", "MJD-OBS": 61100.13385559,
        }
    )  # fmt: skip
    return WCS(header)


def _exposure(rng: np.random.Generator, wcs: WCS | None) -> exposure_io.Exposure:
    psf = rng.random((21, 21)).astype(np.float32)
    # Enough metadata that the IMAGE header spans two 2880-byte blocks.
    metadata: dict[str, object] = {f"KEY{i:03d}": float(i) / 7 for i in range(40)}
    metadata |= {"BAND": "r", "NJY_PER_UNIT": 0.8125, "VISIT": 100007, "DETECTOR": 5}
    return exposure_io.Exposure(
        image=rng.normal(size=SHAPE).astype(np.float32),
        mask=rng.integers(0, int(MaskBit.NO_DATA) * 2, size=SHAPE).astype(np.int32),
        variance=rng.random(SHAPE).astype(np.float32),
        wcs=wcs,
        psf=psf / psf.sum(),
        metadata=metadata,
    )


def _assert_same(fast: exposure_io.Exposure, slow: exposure_io.Exposure) -> None:
    for plane in ("image", "mask", "variance", "psf"):
        a, b = getattr(fast, plane), getattr(slow, plane)
        assert a.dtype == b.dtype and a.dtype.isnative and a.flags.c_contiguous, plane
        np.testing.assert_array_equal(a, b, err_msg=plane)
    assert fast.metadata == slow.metadata


def test_sip_wcs_identical_to_the_full_header_parse(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    exposure_io.write_exposure(_exposure(rng, _sip_wcs()), tmp_path / "e.fits")
    fast = exposure_io.read_exposure(tmp_path / "e.fits")
    slow = exposure_io.read_exposure_astropy(tmp_path / "e.fits")
    _assert_same(fast, slow)
    assert fast.wcs is not None and slow.wcs is not None
    assert fast.wcs.sip is not None and fast.wcs.sip.a_order == 3
    y, x = np.mgrid[0 : SHAPE[0] : 15j, 0 : SHAPE[1] : 15j]
    sky_fast = fast.wcs.all_pix2world(x.ravel(), y.ravel(), 0)
    sky_slow = slow.wcs.all_pix2world(x.ravel(), y.ravel(), 0)
    np.testing.assert_array_equal(sky_fast, sky_slow)
    # The grid does exercise SIP: without it the corners move by more than 0.5 arcsec.
    linear = slow.wcs.wcs_pix2world(x.ravel(), y.ravel(), 0)  # the core alone, no SIP
    shift = np.hypot(*np.subtract(sky_slow, linear))
    assert shift.max() * 3600 > 0.5
    np.testing.assert_array_equal(fast.wcs.sip.bp, slow.wcs.sip.bp)
    assert fast.wcs.to_header(relax=True) == slow.wcs.to_header(relax=True)
    assert fast.wcs.wcs.radesys == "FK5" and fast.wcs.wcs.dateobs == slow.wcs.wcs.dateobs
    assert fast.wcs.wcs.mjdobs == slow.wcs.wcs.mjdobs and fast.wcs.pixel_shape == SHAPE[::-1]


def test_wcs_cards_keep_only_wcs_keys() -> None:
    header = _sip_wcs().to_header(relax=True)
    header["BAND"], header["CRPIXEL"], header["NAXIS"] = "r", "junk", 2
    cards = fitsread.wcs_cards(header.tostring().encode("ascii"))
    keys = {cards[i : i + 8].rstrip() for i in range(0, len(cards), 80)}
    assert {"A_ORDER", "AP_2_0", "BP_0_2", "RADESYS", "MJD-OBS", "DATE-OBS", "NAXIS"} <= keys
    assert "BAND" not in keys and "CRPIXEL" not in keys


def test_planes_stored_otherwise_still_read_through_astropy(tmp_path: Path) -> None:
    """Float64 and scaled planes (not what `write_exposure` writes) come back as astropy reads
    them, converted to the exposure's types."""
    rng = np.random.default_rng(5)
    exp = _exposure(rng, None)
    header = fits.Header({"BAND": "r"})
    scaled = fits.ImageHDU(exp.variance.astype(np.float64), header, name="VARIANCE")
    scaled.scale("int16", bscale=1e-4, bzero=1.0)
    hdus = [
        fits.PrimaryHDU(),
        fits.ImageHDU(exp.image.astype(np.float64), header, name="IMAGE"),
        fits.ImageHDU(exp.mask, name="MASK"),
        scaled,
    ]
    fits.HDUList(hdus).writeto(tmp_path / "o.fits")
    fast = exposure_io.read_exposure(tmp_path / "o.fits")
    slow = exposure_io.read_exposure_astropy(tmp_path / "o.fits")
    assert fast.psf is None and fast.wcs is None and fast.metadata == {"BAND": "r"}
    for plane in ("image", "mask", "variance"):
        a, b = getattr(fast, plane), getattr(slow, plane)
        assert a.dtype == b.dtype and a.dtype.isnative
        np.testing.assert_array_equal(a, b, err_msg=plane)
    np.testing.assert_allclose(fast.variance, exp.variance, atol=1e-4)


def test_truncated_or_foreign_files_fail_naming_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "e.fits"
    exposure_io.write_exposure(_exposure(np.random.default_rng(2), None), path)
    data = path.read_bytes()
    (tmp_path / "cut.fits").write_bytes(data[: len(data) - 2880 * 60])
    with pytest.raises(ValueError, match=r"ends \d+ bytes early"):
        exposure_io.read_exposure(tmp_path / "cut.fits")
    (tmp_path / "nohead.fits").write_bytes(data[:2000])
    with pytest.raises(ValueError, match="no END card"):
        exposure_io.read_exposure(tmp_path / "nohead.fits")
    fits.HDUList([fits.PrimaryHDU(np.zeros((4, 4), np.float32))]).writeto(tmp_path / "p.fits")
    with pytest.raises(ValueError, match="no IMAGE, MASK, VARIANCE extension"):
        exposure_io.read_exposure(tmp_path / "p.fits")


def _assert_same_wcs(fast: WCS, slow: WCS) -> None:
    y, x = np.mgrid[0 : SHAPE[0] : 15j, 0 : SHAPE[1] : 15j]
    sky = slow.all_pix2world(x.ravel(), y.ravel(), 0)
    np.testing.assert_array_equal(fast.all_pix2world(x.ravel(), y.ravel(), 0), sky)
    np.testing.assert_array_equal(fast.all_world2pix(*sky, 0), slow.all_world2pix(*sky, 0))
    assert fast.to_header(relax=True) == slow.to_header(relax=True)
    assert fast.pixel_shape == slow.pixel_shape
    if slow.sip is not None:
        assert fast.sip is not None and fast.sip.crpix.tolist() == slow.sip.crpix.tolist()
        np.testing.assert_array_equal(fast.sip.a, slow.sip.a)


def test_wcs_differing_only_in_crpix_is_copied_and_still_identical(tmp_path: Path) -> None:
    """Patches of one tract: the second and later are the first's parse moved to their own
    reference pixel (SIP's too), identical to a full parse; another CRVAL, a cylindrical
    projection and a changed copy do not leak into later reads."""
    rng = np.random.default_rng(3)
    wcss = [_sip_wcs() for _ in range(4)]
    wcss[1].wcs.crpix = [100.25, 170.5]
    wcss[2].wcs.crpix, wcss[2].wcs.crval = [130.0, 150.0], [150.2, -2.3]
    wcss[3].wcs.ctype = ["RA---CAR-SIP", "DEC--CAR-SIP"]
    for i, wcs in enumerate(wcss):
        exposure_io.write_exposure(_exposure(rng, wcs), tmp_path / f"p{i}.fits")
    fitsread.clear_wcs_bases()
    order = (0, 1, 2, 3, 1, 0)
    fast = [exposure_io.read_exposure(tmp_path / f"p{i}.fits").wcs for i in order]
    # p1 came from p0's parse (not CAR's: not movable; not p2's: another CRVAL).
    assert len(fitsread._BASES) == 2
    assert fast[4] is not None
    fast[4].wcs.crval = [0.0, 0.0]  # a caller changing its WCS changes nobody else's
    for i, wcs in zip(order[:4], fast[:4], strict=True):  # each read its own, kept intact
        slow = exposure_io.read_exposure_astropy(tmp_path / f"p{i}.fits").wcs
        assert wcs is not None and slow is not None
        _assert_same_wcs(wcs, slow)
