"""Raw files follow docs/architecture.md: keywords, pixel type, sections, roles."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from shutterline.camera import geometry, rawformat
from shutterline.simulate import night, rawfile


def _all_raws(summary: night.NightSummary) -> list:
    return sorted((summary.out / "raw").glob("*/raw_*.fits"))


def test_every_exposure_and_detector_has_a_raw(small_night: night.NightSummary) -> None:
    expnums = small_night.bias + small_night.template + small_night.science
    expnums += [e for v in small_night.flat.values() for e in v]
    expected = {
        rawfile.raw_path(small_night.out, e, c) for e in expnums for c in small_night.ccdnums
    }
    assert set(_all_raws(small_night)) == expected
    assert small_night.n_raw_files == len(expected)


def test_headers_carry_every_required_keyword(small_night: night.NightSummary) -> None:
    for path in _all_raws(small_night):
        with fits.open(path) as hdul:
            assert len(hdul) == 2
            missing = [k for k in rawformat.PRIMARY_KEYS if k not in hdul[0].header]
            missing += [k for k in rawformat.DETECTOR_KEYS if k not in hdul[1].header]
            assert not missing, f"{path.name} lacks {missing}"
            ext = hdul[1].header
            assert ext["EXTNAME"] == ext["DETPOS"]
            assert ext["CTYPE1"] == "RA---TAN" and "CD1_2" in ext and "CRPIX1" in ext


def test_pixels_are_unsigned_16_bit_with_bzero(small_night: night.NightSummary) -> None:
    path = _all_raws(small_night)[0]
    with fits.open(path, do_not_scale_image_data=True) as hdul:
        assert hdul[1].header["BITPIX"] == 16
        assert hdul[1].header["BZERO"] == 32768
    data = fits.getdata(path, 1)
    assert data.dtype == np.uint16


def test_sections_tile_the_raw_grid(small_night: night.NightSummary) -> None:
    path = _all_raws(small_night)[0]
    with fits.open(path) as hdul:
        ext, shape = hdul[1].header, hdul[1].data.shape
    cover = np.zeros(shape, dtype=int)
    for amp in rawformat.AMPLIFIERS:
        for stem in ("DATASEC", "BIASSEC"):
            cover[geometry.parse_section(ext[rawformat.amp_key(stem, amp)]).slices] += 1
    assert np.all(cover == 1)


def test_obstype_follows_the_role(small_night: night.NightSummary) -> None:
    roles = {
        rawformat.OBSTYPE_BIAS: small_night.bias,
        rawformat.OBSTYPE_SCIENCE: small_night.template + small_night.science,
        rawformat.OBSTYPE_FLAT: [e for v in small_night.flat.values() for e in v],
    }
    ccd = small_night.ccdnums[0]
    for obstype, expnums in roles.items():
        for expnum in expnums:
            header = fits.getheader(rawfile.raw_path(small_night.out, expnum, ccd), 0)
            assert header["OBSTYPE"] == obstype
            assert header["EXPNUM"] == expnum
