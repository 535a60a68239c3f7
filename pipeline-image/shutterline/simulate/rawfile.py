"""Writing one raw FITS file in the format of docs/architecture.md.

Times in the headers are UTC (``TIMESYS = 'UTC'``), as DECam writes them, while the plan's
times (and every time inside the project) are TAI: ``MJD-OBS`` is the start of the exposure
and ``DATE-OBS`` the same instant in ISO form, both UTC.
No keyword depends on the wall clock, so the same seed gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy import time
from astropy import wcs as fitswcs
from astropy.io import fits

from shutterline.camera import filters, layout, rawformat
from shutterline.simulate import detector, geometry, schedule

__all__ = ["primary_header", "raw_path", "write_raw"]


def raw_path(out: Path, expnum: int, ccdnum: int) -> Path:
    """``out/raw/<EXPNUM>/raw_<EXPNUM>_<CCDNUM:02d>.fits``."""
    return out / "raw" / str(expnum) / f"raw_{expnum}_{ccdnum:02d}.fits"


def primary_header(plan: schedule.ExposurePlan) -> fits.Header:
    """Exposure keywords (``rawformat.PRIMARY_KEYS`` and a few descriptive ones)."""
    h = fits.Header()
    h["INSTRUME"] = (layout.CAMERA.name, "simulated DECam-like camera")
    h["EXPNUM"] = (plan.expnum, "exposure number (= visit id)")
    start = time.Time(plan.mjd, format="mjd", scale="tai").utc
    h["TIMESYS"] = ("UTC", "time scale of MJD-OBS and DATE-OBS")
    h["MJD-OBS"] = (start.mjd, "MJD of exposure start (UTC)")
    h["DATE-OBS"] = (start.isot, "exposure start (UTC)")
    h["EXPTIME"] = (plan.exptime, "exposure time (s)")
    h["FILTER"] = (filters.physical_filter_of(plan.band), "filter in the beam (DECam name)")
    h["OBSTYPE"] = (plan.obstype, "zero | dome flat | object")
    h["TELRA"] = (plan.ra, "boresight right ascension (deg, ICRS)")
    h["TELDEC"] = (plan.dec, "boresight declination (deg, ICRS)")
    h["AIRMASS"] = (plan.airmass, "airmass at mid-exposure")
    h["OBJECT"] = (plan.field or plan.role, "field name")
    missing = [k for k in rawformat.PRIMARY_KEYS if k not in h]
    assert not missing, missing  # the writer and rawformat must agree
    return h


def _extension_header(
    model: detector.DetectorModel, raw: geometry.RawLayout, wcs: fitswcs.WCS
) -> fits.Header:
    h = fits.Header()
    h["EXTNAME"] = model.detpos
    h["CCDNUM"] = (model.ccdnum, "detector number")
    h["DETPOS"] = (model.detpos, "detector position name")
    h["BUNIT"] = "adu"
    for amp in detector.AMPS:
        h[rawformat.amp_key("DATASEC", amp)] = raw.data[amp].to_fits()
        h[rawformat.amp_key("BIASSEC", amp)] = raw.bias[amp].to_fits()
        h[rawformat.amp_key("GAIN", amp)] = (model.gain[amp], f"amp {amp} gain (e-/ADU)")
        h[rawformat.amp_key("RDNOISE", amp)] = (model.read_noise[amp], f"amp {amp} read noise (e-)")
        h[rawformat.amp_key("SATURAT", amp)] = (
            model.saturate_adu[amp],
            f"amp {amp} saturation (raw ADU)",
        )
    w = wcs.wcs
    h["WCSAXES"] = 2
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    h["CRVAL1"], h["CRVAL2"] = float(w.crval[0]), float(w.crval[1])
    h["CRPIX1"], h["CRPIX2"] = float(w.crpix[0]), float(w.crpix[1])
    for i in range(2):
        for j in range(2):
            h[f"CD{i + 1}_{j + 1}"] = float(w.cd[i, j])
    h["RADESYS"] = "ICRS"
    h["EQUINOX"] = 2000.0
    return h


def write_raw(
    path: Path,
    plan: schedule.ExposurePlan,
    model: detector.DetectorModel,
    raw: geometry.RawLayout,
    wcs: fitswcs.WCS,
    pixels: npt.NDArray[np.uint16],
) -> None:
    """Write the raw (primary header + one uint16 image extension) to ``path``.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    hdus = fits.HDUList(
        [
            fits.PrimaryHDU(header=primary_header(plan)),
            fits.ImageHDU(data=pixels, header=_extension_header(model, raw, wcs)),
        ]
    )
    tmp = path.with_name(path.name + ".tmp")
    hdus.writeto(tmp, overwrite=True)
    tmp.replace(path)
