"""Where a detector's pixels sit on the sky and in the raw file.

Orientation, as on DECam: a CCD's long axis (rows, y) runs along the focal plane's x axis,
which points west on the sky; the CCD's x axis (columns) points south. ``DetectorSpec``
offsets place the CCD's centre relative to the boresight; a smaller simulated shape shrinks
the offsets in proportion so small detectors stay packed like the real ones.

Two pixel frames appear here: *data* pixels (the ``ny x nx`` science area after trimming,
amplifier A left of B) and *raw* pixels (the file's full grid, overscan included). Both are
0-based with the centre of the first pixel at 0.0; ``x_raw = x_data + overscan``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy import wcs as fitswcs

from shutterline.camera import geometry, layout
from shutterline.simulate import config

__all__ = [
    "RawLayout",
    "data_pixels_to_sky",
    "detector_wcs",
    "perturb_wcs",
    "raw_layout",
    "sky_to_data_pixels",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RawLayout:
    """Pixel sections of a raw file: ``[overscan A | data A | data B | overscan B]``."""

    nx: int
    ny: int
    overscan: int
    data: dict[str, geometry.Section]
    bias: dict[str, geometry.Section]

    @property
    def raw_shape(self) -> tuple[int, int]:
        """``(ny, nx_raw)`` of the raw image."""
        return self.ny, self.nx + 2 * self.overscan


def raw_layout(cfg: config.SimConfig) -> RawLayout:
    """The raw layout for the configured detector shape."""
    os_, half, ny = cfg.overscan, cfg.nx // 2, cfg.ny
    data = {
        "A": geometry.Section(os_, os_ + half, 0, ny),
        "B": geometry.Section(os_ + half, os_ + cfg.nx, 0, ny),
    }
    bias = {
        "A": geometry.Section(0, os_, 0, ny),
        "B": geometry.Section(os_ + cfg.nx, 2 * os_ + cfg.nx, 0, ny),
    }
    return RawLayout(cfg.nx, ny, os_, data, bias)


def detector_wcs(cfg: config.SimConfig, ccdnum: int, ra_deg: float, dec_deg: float) -> fitswcs.WCS:
    """The true TAN WCS of one detector on the raw grid for a boresight at (ra, dec).

    The CD matrix maps raw pixel steps to tangent-plane degrees; CRPIX (1-based, raw grid)
    is the pixel that would sit on the boresight.
    """
    spec = layout.CAMERA.detector(ccdnum)
    sx, sy = cfg.scale
    fx, fy = spec.offset_x * sy, spec.offset_y * sx  # focal x runs along CCD rows
    cx, cy = (cfg.nx - 1) / 2.0, (cfg.ny - 1) / 2.0
    scale = layout.CAMERA.pixel_scale_arcsec / 3600.0
    w = fitswcs.WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [ra_deg, dec_deg]
    w.wcs.crpix = [cx + fy + cfg.overscan + 1.0, cy - fx + 1.0]
    # Column steps go south, row steps go west: a standard sky parity (det CD < 0).
    w.wcs.cd = np.array([[0.0, -scale], [-scale, 0.0]])
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    return w


def perturb_wcs(
    true_wcs: fitswcs.WCS, cfg: config.SimConfig, rng: np.random.Generator
) -> tuple[fitswcs.WCS, dict[str, float]]:
    """The WCS written to the raw: the true one shifted and slightly rotated.

    The shift is at most 1.4 arcsec and the rotation moves no pixel of the detector by more
    than 0.5 arcsec, so the error anywhere on the detector stays below 2 arcsec.

    Returns
    -------
    wcs, error : the perturbed WCS and the drawn shift (arcsec) and rotation (arcsec of arc
        at the farthest corner), for the night's record.
    """
    scale = float(np.sqrt(abs(np.linalg.det(true_wcs.wcs.cd)))) * 3600.0
    shift = rng.uniform(0.3, 1.4)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    crpix = np.asarray(true_wcs.wcs.crpix, dtype=float)
    corners = np.array(
        [
            [cfg.overscan, 0],
            [cfg.overscan + cfg.nx, 0],
            [cfg.overscan, cfg.ny],
            [cfg.overscan + cfg.nx, cfg.ny],
        ],
        dtype=float,
    )
    reach_px = float(np.max(np.hypot(*(corners + 0.5 - crpix).T)))
    corner_move = rng.uniform(-0.5, 0.5)
    theta = corner_move / (reach_px * scale)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    w = true_wcs.deepcopy()
    w.wcs.cd = rot @ np.asarray(true_wcs.wcs.cd)
    w.wcs.crpix = crpix + shift / scale * np.array([np.cos(angle), np.sin(angle)])
    w.wcs.set()
    return w, {"shift_arcsec": float(shift), "rotation_arcsec_at_corner": float(corner_move)}


def sky_to_data_pixels(
    w: fitswcs.WCS, cfg: config.SimConfig, ra: FloatArray, dec: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Data-frame pixel positions ``(x, y)`` of sky positions (degrees) under WCS ``w``."""
    if len(ra) == 0:
        return np.zeros(0), np.zeros(0)
    x_raw, y = w.wcs_world2pix(ra, dec, 0)
    return np.asarray(x_raw) - cfg.overscan, np.asarray(y)


def data_pixels_to_sky(
    w: fitswcs.WCS, cfg: config.SimConfig, x: FloatArray, y: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Sky positions (degrees) of data-frame pixel positions under WCS ``w``."""
    ra, dec = w.wcs_pix2world(np.asarray(x) + cfg.overscan, np.asarray(y), 0)
    return np.asarray(ra), np.asarray(dec)
