"""Synthetic raws and scenes for the ISR tests, written here from the raw format's description.

A raw is made from a physical electron image ``(ny, nx)``: each amplifier's half is divided by
its gain, its bias level added, read noise drawn, and the result placed at its data section of
the raw grid, with overscan (bias plus read noise only) at its bias section.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy import special

__all__ = [
    "Layout",
    "RawSpec",
    "default_layout",
    "gaussian_stars",
    "make_raw",
    "split_layout",
    "swapped_layout",
    "trimmed_wcs",
]


@dataclass(frozen=True)
class Layout:
    """Raw columns of each amplifier (0-based, half-open) and whether to write them reversed.

    ``data``/``bias`` map amplifier name to ``(x0, x1)``; every section spans all rows.
    ``physical`` maps amplifier name to the physical column range ``(x0, x1)`` of its pixels.
    """

    nx_raw: int
    data: dict[str, tuple[int, int]]
    bias: dict[str, tuple[int, int]]
    physical: dict[str, tuple[int, int]]
    reversed_sections: bool = False


def default_layout(nx: int, overscan: int = 20) -> Layout:
    """``[overscan A | data A | data B | overscan B]``."""
    h = nx // 2
    return Layout(
        nx + 2 * overscan,
        data={"A": (overscan, overscan + h), "B": (overscan + h, overscan + nx)},
        bias={"A": (0, overscan), "B": (overscan + nx, nx + 2 * overscan)},
        physical={"A": (0, h), "B": (h, nx)},
    )


def swapped_layout(nx: int, overscan: int = 20) -> Layout:
    """``[overscan B | data A | data B | overscan A]``, section strings written reversed."""
    h = nx // 2
    return Layout(
        nx + 2 * overscan,
        data={"A": (overscan, overscan + h), "B": (overscan + h, overscan + nx)},
        bias={"A": (overscan + nx, nx + 2 * overscan), "B": (0, overscan)},
        physical={"A": (0, h), "B": (h, nx)},
        reversed_sections=True,
    )


def split_layout(nx: int, overscan: int = 20) -> Layout:
    """``[data A | overscan A | overscan B | data B]``: data not contiguous in the raw."""
    h = nx // 2
    return Layout(
        nx + 2 * overscan,
        data={"A": (0, h), "B": (h + 2 * overscan, nx + 2 * overscan)},
        bias={"A": (h, h + overscan), "B": (h + overscan, h + 2 * overscan)},
        physical={"A": (0, h), "B": (h, nx)},
    )


@dataclass
class RawSpec:
    """Electrical properties of the amplifiers and the exposure keywords."""

    bias_adu: dict[str, float] = field(default_factory=lambda: {"A": 1000.0, "B": 1400.0})
    gain: dict[str, float] = field(default_factory=lambda: {"A": 4.0, "B": 4.6})
    read_noise: dict[str, float] = field(default_factory=lambda: {"A": 6.0, "B": 7.5})
    saturation_adu: dict[str, float] = field(default_factory=lambda: {"A": 40000.0, "B": 42000.0})
    primary: dict[str, object] = field(
        default_factory=lambda: {
            "EXPNUM": 1234,
            "MJD-OBS": 61000.1,
            "DATE-OBS": "2025-11-21T02:24:00",
            "EXPTIME": 30.0,
            "FILTER": "g DECam SDSS c0001 4720.0 1520.0",
            "OBSTYPE": "object",
            "TELRA": 150.0,
            "TELDEC": 2.0,
            "AIRMASS": 1.2,
        }
    )
    ccdnum: int = 7


def trimmed_wcs(shape: tuple[int, int], ra: float = 150.0, dec: float = 2.0) -> WCS:
    """A TAN WCS on the trimmed grid ``(ny, nx)`` with 0.263 arcsec pixels."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [shape[1] / 4.0, shape[0] / 2.0]  # inside amplifier A
    scale = 0.263 / 3600.0
    w.wcs.cd = np.array([[0.0, -scale], [-scale, 0.0]])
    w.wcs.set()
    return w


def _section(x: tuple[int, int], ny: int, reverse: bool) -> str:
    a, b = x[0] + 1, x[1]
    return f"[{b}:{a},{ny}:1]" if reverse else f"[{a}:{b},1:{ny}]"


def make_raw(
    electrons: np.ndarray,
    layout: Layout,
    rng: np.random.Generator,
    spec: RawSpec | None = None,
    wcs: WCS | None = None,
) -> fits.HDUList:
    """A raw HDUList (read back from FITS bytes) of a physical electron image ``(ny, nx)``.

    ``electrons`` is the expected signal; Poisson and read noise are drawn here. The WCS given
    on the physical (trimmed) grid is written shifted to the raw grid of amplifier A.
    """
    spec = spec or RawSpec()
    ny = electrons.shape[0]
    raw = np.zeros((ny, layout.nx_raw), np.float64)
    header = fits.Header()
    for amp, (x0, x1) in layout.data.items():
        p0, p1 = layout.physical[amp]
        counts = rng.poisson(np.clip(electrons[:, p0:p1], 0, None)).astype(np.float64)
        counts += rng.normal(0, spec.read_noise[amp], counts.shape)
        raw[:, x0:x1] = spec.bias_adu[amp] + counts / spec.gain[amp]
        b0, b1 = layout.bias[amp]
        noise = rng.normal(0, spec.read_noise[amp] / spec.gain[amp], (ny, b1 - b0))
        raw[:, b0:b1] = spec.bias_adu[amp] + noise
        header[f"DATASEC{amp}"] = _section((x0, x1), ny, layout.reversed_sections)
        header[f"BIASSEC{amp}"] = _section((b0, b1), ny, layout.reversed_sections)
        header[f"GAIN{amp}"] = spec.gain[amp]
        header[f"RDNOISE{amp}"] = spec.read_noise[amp]
        header[f"SATURAT{amp}"] = spec.saturation_adu[amp]
        sat = spec.saturation_adu[amp]
        raw[:, x0:x1] = np.minimum(raw[:, x0:x1], sat)
    header["CCDNUM"] = spec.ccdnum
    header["DETPOS"] = "N7"
    w = (wcs or trimmed_wcs(electrons.shape)).deepcopy()
    w.wcs.crpix = w.wcs.crpix + np.array([layout.data["A"][0] - layout.physical["A"][0], 0.0])
    header.update(w.to_header())
    pixels = np.clip(np.round(raw), 0, 65535).astype(np.uint16)
    hdul = fits.HDUList(
        [
            fits.PrimaryHDU(header=fits.Header(spec.primary)),
            fits.ImageHDU(pixels, header, name="N7"),
        ]
    )
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    buffer.seek(0)
    return fits.open(buffer)


def gaussian_stars(
    shape: tuple[int, int],
    xs: np.ndarray,
    ys: np.ndarray,
    fluxes: np.ndarray,
    fwhm_pix: float,
) -> np.ndarray:
    """Pixel-integrated circular Gaussian stars ``(ny, nx)`` float64, total ``fluxes`` each."""
    sigma = fwhm_pix / 2.3548
    out = np.zeros(shape)
    r = int(np.ceil(5 * sigma))
    for x, y, f in zip(xs, ys, fluxes, strict=True):
        ix, iy = round(x), round(y)
        gx = np.arange(max(ix - r, 0), min(ix + r + 1, shape[1]))
        gy = np.arange(max(iy - r, 0), min(iy + r + 1, shape[0]))
        px = _integrated(gx, x, sigma)
        py = _integrated(gy, y, sigma)
        out[gy[0] : gy[-1] + 1, gx[0] : gx[-1] + 1] += f * np.outer(py, px)
    return out


def _integrated(pixels: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    s = np.sqrt(2.0) * sigma
    return 0.5 * (
        special.erf((pixels + 0.5 - centre) / s) - special.erf((pixels - 0.5 - centre) / s)
    )
