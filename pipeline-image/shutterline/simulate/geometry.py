"""Where a detector's pixels sit on the sky and in the raw file.

Orientation, as on DECam: a CCD's long axis (rows, y) runs along the focal plane's x axis,
which points west on the sky; the CCD's x axis (columns) points south. ``DetectorSpec``
offsets place the CCD's centre relative to the boresight; a smaller simulated shape shrinks
the offsets in proportion so small detectors stay packed like the real ones.

Two pixel frames appear here: *data* pixels (the ``ny x nx`` science area after trimming,
amplifier A left of B) and *raw* pixels (the file's full grid, overscan included). Both are
0-based with the centre of the first pixel at 0.0; ``x_raw = x_data + overscan``.

The optics distort: the true WCS is TAN-SIP, a radial cubic about the optical axis (the
boresight) that moves a point `RADIAL_DISTORTION_ARCSEC` outward at 1 degree, plus a small
quadratic (a tilted element): milder than DECam's, but no detector is linear to 0.1 arcsec
(0.2 to 0.4 arcsec from a linear WCS at the corners, whatever the simulated size). The
WCS written to the raw is plain TAN (the raw format's): the true one linearized at the
detector centre, then shifted and rotated (`perturb_wcs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy import wcs as fitswcs

from shutterline.camera import geometry, layout
from shutterline.simulate import config

__all__ = [
    "RADIAL_DISTORTION_ARCSEC",
    "RawLayout",
    "data_pixels_to_sky",
    "detector_wcs",
    "linearized_wcs",
    "perturb_wcs",
    "raw_layout",
    "sky_to_data_pixels",
]

FloatArray = npt.NDArray[np.float64]

#: Outward displacement (arcsec) of a point 1 degree from the optical axis (radial cubic).
RADIAL_DISTORTION_ARCSEC = 10.0
#: Quadratic distortion term (per pixel) of a tilted optical element, the same everywhere.
_QUADRATIC_PER_PX = 4e-7
#: Pixels beyond the detector edge where sky-to-pixel positions are refined through SIP.
_NEAR_PX = 256.0


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
    """The true TAN-SIP WCS of one detector on the raw grid for a boresight at (ra, dec).

    The CD matrix maps raw pixel steps to tangent-plane degrees; CRPIX (1-based, raw grid)
    is the pixel that would sit on the boresight, the centre of the radial distortion.
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
    return _distorted(w, cfg)


def _distorted(w: fitswcs.WCS, cfg: config.SimConfig) -> fitswcs.WCS:
    # About CRPIX (the optical axis): a radial cubic u (1 + k r^2) and a quadratic (a tilted
    # element), which bends even the detectors near the axis. A shrunk focal plane keeps the
    # full-size pattern in pixels, compressed: u_full = u / s.
    pix = layout.CAMERA.pixel_scale_arcsec
    s = float(np.sqrt(cfg.scale[0] * cfg.scale[1]))
    k = RADIAL_DISTORTION_ARCSEC / pix / (3600.0 / pix) ** 3 / s**3
    q = _QUADRATIC_PER_PX / s**2
    a, b = np.zeros((4, 4)), np.zeros((4, 4))
    a[3, 0] = a[1, 2] = k
    b[2, 1] = b[0, 3] = k
    a[2, 0], b[0, 2] = q, 0.5 * q
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    w.sip = fitswcs.Sip(a, b, None, None, w.wcs.crpix)
    w.wcs.set()
    return w


def linearized_wcs(true_wcs: fitswcs.WCS, cfg: config.SimConfig) -> fitswcs.WCS:
    """The TAN WCS that best follows ``true_wcs`` at the detector centre (CRPIX there)."""
    cx, cy = cfg.overscan + (cfg.nx - 1) / 2.0, (cfg.ny - 1) / 2.0
    h = min(cfg.nx, cfg.ny) / 8.0
    xs = np.array([cx, cx + h, cx - h, cx, cx])
    ys = np.array([cy, cy, cy, cy + h, cy - h])
    ra, dec = true_wcs.all_pix2world(xs, ys, 0)
    w = fitswcs.WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [float(ra[0]), float(dec[0])]
    w.wcs.crpix = [cx + 1.0, cy + 1.0]
    w.wcs.cd = np.eye(2)
    w.wcs.radesys = "ICRS"
    w.wcs.set()
    xi, eta = (
        np.asarray(c) - c0 for c, c0 in zip(w.wcs_world2pix(ra, dec, 0), (cx, cy), strict=True)
    )
    # Central differences: the cubic's second-order error cancels.
    w.wcs.cd = np.array([[xi[1] - xi[2], xi[3] - xi[4]], [eta[1] - eta[2], eta[3] - eta[4]]]) / (
        2.0 * h
    )
    w.wcs.set()
    return w


def perturb_wcs(
    true_wcs: fitswcs.WCS, cfg: config.SimConfig, rng: np.random.Generator
) -> tuple[fitswcs.WCS, dict[str, float]]:
    """The WCS written to the raw: the true one linearized, shifted and slightly rotated.

    The shift is at most 1.4 arcsec and the rotation moves no pixel of the detector by more
    than 0.5 arcsec; with the distortion the linear WCS leaves out (under 1 arcsec), the
    error anywhere on the detector stays below 3 arcsec.

    Returns
    -------
    wcs, error : the perturbed WCS and the drawn shift (arcsec) and rotation (arcsec of arc
        at the farthest corner), for the night's record.
    """
    true_wcs = linearized_wcs(true_wcs, cfg)
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
    # The distortion moves no point by more than _NEAR_PX from where the TAN part puts it:
    # refine (iteratively, through SIP) only points that could be on or near the detector.
    x_raw, y = (np.asarray(c, dtype=float) for c in w.wcs_world2pix(ra, dec, 0))
    near = (
        (x_raw > cfg.overscan - _NEAR_PX)
        & (x_raw < cfg.overscan + cfg.nx + _NEAR_PX)
        & (y > -_NEAR_PX)
        & (y < cfg.ny + _NEAR_PX)
    )
    if w.sip is not None and near.any():
        x_raw[near], y[near] = w.all_world2pix(np.asarray(ra)[near], np.asarray(dec)[near], 0)
    return x_raw - cfg.overscan, y


def data_pixels_to_sky(
    w: fitswcs.WCS, cfg: config.SimConfig, x: FloatArray, y: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Sky positions (degrees) of data-frame pixel positions under WCS ``w``."""
    ra, dec = w.all_pix2world(np.asarray(x) + cfg.overscan, np.asarray(y), 0)
    return np.asarray(ra), np.asarray(dec)
