"""A minimal valid raw in the format of docs/architecture.md, for the Butler tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from shutterline.camera import filters, layout

__all__ = ["write_raw"]


def write_raw(
    path: Path,
    expnum: int,
    ccdnum: int,
    *,
    mjd: float = 61207.1,
    band: str = "r",
    obstype: str = "object",
    ra: float = 150.0,
    dec: float = 2.0,
    shape: tuple[int, int] = (64, 32),
    seed: int = 0,
    drop: str | None = None,
    level: int = 1000,
) -> Path:
    """Write one raw: ``shape`` is the science area ``(ny, nx)``; 4 overscan columns per amp.

    ``drop`` removes keywords (comma-separated, from whichever header holds them), to make a
    malformed raw; ``level`` is the mean ADU of the data (overscan stays at 1000).
    """
    ny, nx = shape
    over = 4
    rng = np.random.default_rng(seed)
    pixels = rng.integers(900, 1100, size=(ny, nx + 2 * over)).astype(np.uint16)
    pixels[:, over : over + nx] += np.uint16(level - 1000)
    spec = layout.CAMERA.detector(ccdnum)
    primary = _primary_header(expnum, mjd, band, obstype, ra, dec)
    image = _image_header(spec, ccdnum, ny, nx, over, ra, dec)
    for key in drop.split(",") if drop else ():
        for header in (primary, image):
            if key in header:
                del header[key]
    hdu = fits.ImageHDU(pixels, image, name=spec.detpos, uint=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(header=primary), hdu]).writeto(path, overwrite=True)
    return path


def _primary_header(
    expnum: int, mjd: float, band: str, obstype: str, ra: float, dec: float
) -> fits.Header:
    primary = fits.Header()
    primary["EXPNUM"] = expnum
    primary["TIMESYS"] = "TAI"
    primary["MJD-OBS"] = mjd
    primary["DATE-OBS"] = Time(mjd, format="mjd", scale="tai").isot
    primary["EXPTIME"] = 30.0
    # A band name is written as DECam spells it; anything else as given (a bias, a bad value).
    primary["FILTER"] = filters.physical_filter_of(band) if band in filters.BANDS else band
    primary["OBSTYPE"] = obstype
    primary["TELRA"] = ra
    primary["TELDEC"] = dec
    primary["AIRMASS"] = 1.2
    return primary


def _image_header(
    spec: layout.DetectorSpec, ccdnum: int, ny: int, nx: int, over: int, ra: float, dec: float
) -> fits.Header:
    """Two amplifiers side by side, each with its overscan outside, and a TAN WCS."""
    scale = layout.CAMERA.pixel_scale_arcsec / 3600.0
    image = fits.Header()
    half = nx // 2
    image["CCDNUM"] = ccdnum
    image["DETPOS"] = spec.detpos
    image["DATASECA"] = f"[{over + 1}:{over + half},1:{ny}]"
    image["DATASECB"] = f"[{over + half + 1}:{over + nx},1:{ny}]"
    image["BIASSECA"] = f"[1:{over},1:{ny}]"
    image["BIASSECB"] = f"[{over + nx + 1}:{nx + 2 * over},1:{ny}]"
    for amp, gain in (("A", 4.0), ("B", 4.2)):
        image[f"GAIN{amp}"] = gain
        image[f"RDNOISE{amp}"] = 6.0
        image[f"SATURAT{amp}"] = 60000.0
    image["CTYPE1"], image["CTYPE2"] = "RA---TAN", "DEC--TAN"
    image["CRVAL1"] = ra + spec.offset_x * scale / np.cos(np.radians(dec))
    image["CRVAL2"] = dec + spec.offset_y * scale
    image["CRPIX1"], image["CRPIX2"] = (nx + 2 * over) / 2 + 0.5, ny / 2 + 0.5
    image["CD1_1"], image["CD1_2"], image["CD2_1"], image["CD2_2"] = -scale, 0.0, 0.0, scale
    return image
