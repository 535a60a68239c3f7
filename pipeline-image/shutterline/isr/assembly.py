"""Raw assembly: per-amplifier overscan subtraction, trim, gain, variance, saturation, WCS.

Geometry comes only from the section keywords (``DATASEC<amp>``, ``BIASSEC<amp>``). The trimmed
grid keeps the amplifiers' data sections in their raw order with everything between them
(overscan, prescan) removed: distinct column ranges are packed left to right, distinct row ranges
bottom to top. Reversed section strings (``[1074:51,...]``, a readout direction) describe the
same pixels as the forward string; the WCS of the raw refers to raw pixel positions, so pixels
are never flipped.

Overscan: row-wise. For every data row the overscan columns of that row are averaged after
rejecting pixels more than ``clip`` robust sigmas from the block median (a cosmic ray in the
overscan), then the row profile is smoothed with a running mean over ``smooth_rows`` rows so
its noise does not add stripes to the image. If the overscan does not cover the data rows, the
clipped mean of the whole block is used.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import warnings

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from scipy import ndimage

from shutterline import exceptions
from shutterline.camera import filters, geometry, rawformat
from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod
from shutterline.isr import _amplifier
from shutterline.isr import header as hdr

__all__ = [
    "Amplifier",
    "assemble_raw",
    "assemble_with_saturation",
    "overscan_profile",
    "read_amplifiers",
]

_LOG = logging.getLogger(__name__)
_DATASEC = re.compile(r"^DATASEC(\w+)$")


@dataclasses.dataclass(frozen=True)
class Amplifier:
    """One amplifier of a raw: where its pixels are and how to convert them.

    ``data``/``bias`` are sections of the raw array; ``out_x0``/``out_y0`` place the data
    section in the trimmed grid. ``gain`` in e-/ADU, ``read_noise`` in electrons,
    ``saturation`` in raw ADU (before overscan subtraction and gain).
    """

    name: str
    data: geometry.Section
    bias: geometry.Section
    gain: float
    read_noise: float
    saturation: float
    out_x0: int = 0
    out_y0: int = 0

    @property
    def offset(self) -> tuple[int, int]:
        """``(dx, dy)``: raw pixel minus trimmed pixel for this amplifier's data."""
        return self.data.x0 - self.out_x0, self.data.y0 - self.out_y0

    @property
    def out_slices(self) -> tuple[slice, slice]:
        """``(rows, columns)`` of this amplifier in the trimmed grid."""
        ny, nx = self.data.shape
        return slice(self.out_y0, self.out_y0 + ny), slice(self.out_x0, self.out_x0 + nx)


def _read_hdus(hdul: fits.HDUList) -> tuple[str, fits.Header, fits.Header, np.ndarray]:
    desc = str(hdul.filename() or "<in-memory raw>")
    try:
        with warnings.catch_warnings():
            # astropy only warns about a short file (HDUs load lazily, so the warning can come
            # from len() or from the pixels); a raw with missing bytes is corrupt.
            warnings.simplefilter("error")
            if len(hdul) < 2:
                raise exceptions.CorruptInputError(desc, "no image extension after the primary HDU")
            primary, ext = hdul[0].header, hdul[1].header
            data = hdul[1].data
    except exceptions.ShutterlineError:
        raise
    except Exception as exc:
        raise exceptions.CorruptInputError(desc, f"cannot read the HDUs: {exc}") from exc
    if data is None or data.ndim != 2 or data.size == 0:
        raise exceptions.CorruptInputError(desc, "the image extension holds no 2-d pixel array")
    return hdr.describe(hdul), primary, ext, data


def _amp_names(header: fits.Header) -> list[str]:
    # The required amplifiers, plus any other a different readout mode declares.
    found = {m.group(1) for k in header if k and (m := _DATASEC.match(k))}
    return sorted(set(rawformat.AMPLIFIERS) | found)


def read_amplifiers(header: fits.Header, shape: tuple[int, int], desc: str) -> list[Amplifier]:
    """The amplifiers of a raw image extension, placed in the trimmed grid.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The image extension's header.
    shape : tuple of int
        ``(ny, nx)`` of the raw pixel array.
    desc : str
        The raw's name for error messages.
    """
    amps = []
    for name in _amp_names(header):
        key = rawformat.amp_key
        amps.append(
            Amplifier(
                name=name,
                data=hdr.require_section(header, key("DATASEC", name), desc, shape),
                bias=hdr.require_section(header, key("BIASSEC", name), desc, shape),
                gain=_positive(header, key("GAIN", name), desc),
                read_noise=_positive(header, key("RDNOISE", name), desc, allow_zero=True),
                saturation=_positive(header, key("SATURAT", name), desc),
            )
        )
    return _place(amps, desc)


def _positive(header: fits.Header, key: str, desc: str, allow_zero: bool = False) -> float:
    value = hdr.require_float(header, key, desc)
    if value < 0 or (value == 0 and not allow_zero):
        raise exceptions.MalformedRawError(desc, key, f"must be positive, is {value!r}")
    return value


def _packed_starts(ranges: set[tuple[int, int]], key: str, desc: str) -> dict[tuple[int, int], int]:
    starts: dict[tuple[int, int], int] = {}
    position, previous_end = 0, -1
    for lo, hi in sorted(ranges):
        if lo < previous_end:
            raise exceptions.MalformedRawError(desc, key, "data sections overlap")
        starts[(lo, hi)] = position
        position += hi - lo
        previous_end = hi
    return starts


def _place(amps: list[Amplifier], desc: str) -> list[Amplifier]:
    key = rawformat.amp_key("DATASEC", amps[0].name)
    xs = _packed_starts({(a.data.x0, a.data.x1) for a in amps}, key, desc)
    ys = _packed_starts({(a.data.y0, a.data.y1) for a in amps}, key, desc)
    placed = [
        dataclasses.replace(a, out_x0=xs[(a.data.x0, a.data.x1)], out_y0=ys[(a.data.y0, a.data.y1)])
        for a in amps
    ]
    ny = sum(hi - lo for lo, hi in ys)
    nx = sum(hi - lo for lo, hi in xs)
    if sum(a.data.shape[0] * a.data.shape[1] for a in amps) != nx * ny:
        raise exceptions.MalformedRawError(
            desc, key, "data sections do not tile a rectangle (gaps or overlaps)"
        )
    return placed


def overscan_profile(
    block: np.ndarray, data_rows: slice, bias_rows: slice, clip: float = 5.0, smooth_rows: int = 33
) -> np.ndarray:
    """The bias level in ADU for each data row, from an overscan block.

    Parameters
    ----------
    block : numpy.ndarray
        ``(ny_bias, nx_bias)`` overscan pixels in ADU.
    data_rows, bias_rows : slice
        Raw row ranges of the data section and of the overscan block.
    clip : float
        Rejection threshold in robust sigmas (1.4826 x MAD of the block).
    smooth_rows : int
        Length of the running mean along rows.

    Returns
    -------
    numpy.ndarray
        ``(ny_data,)`` float32, ADU.
    """
    values = block.astype(np.float32)
    median = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - median)))
    good = np.abs(values - median) <= clip * max(sigma, 1.0)  # 1 ADU: the integer floor
    ny_data = data_rows.stop - data_rows.start
    if bias_rows.start > data_rows.start or bias_rows.stop < data_rows.stop:
        level = float(values[good].mean()) if good.any() else median
        return np.full(ny_data, level, np.float32)
    rows = slice(data_rows.start - bias_rows.start, data_rows.stop - bias_rows.start)
    sums = np.where(good[rows], values[rows], 0.0).sum(axis=1)
    counts = good[rows].sum(axis=1)
    profile = np.where(counts > 0, sums / np.maximum(counts, 1), median)
    if smooth_rows > 1:
        profile = ndimage.uniform_filter1d(profile, min(smooth_rows, ny_data), mode="nearest")
    return profile.astype(np.float32)


def _fill_amp(raw: np.ndarray, amp: Amplifier, out: exposure_mod.Exposure) -> np.ndarray:
    rows, cols = amp.data.slices
    profile = overscan_profile(raw[amp.bias.slices], rows, amp.bias.slices[0])
    data = raw[rows, cols]
    image, variance = out.image[amp.out_slices], out.variance[amp.out_slices]
    # Poisson: electrons, the variance of a count; one compiled pass instead of six.
    top = _amplifier.fill(
        data, profile, np.float32(amp.gain), np.float32(amp.read_noise**2), image, variance
    )
    if top < amp.saturation:  # the maximum came free: saves the compare and nonzero passes
        return np.zeros(0, np.intp)
    local = np.flatnonzero(data >= amp.saturation)
    ly, lx = np.divmod(local, data.shape[1])
    flat = (ly + amp.out_y0) * out.shape[1] + (lx + amp.out_x0)
    out.mask.ravel()[flat] |= int(mask_mod.MaskBit.SAT)
    return flat


def _anchor(amps: list[Amplifier], crpix: np.ndarray) -> Amplifier:
    # crpix is 1-based FITS; the amplifier whose data holds the reference pixel, else nearest.
    x, y = crpix[0] - 1.0, crpix[1] - 1.0

    def distance(a: Amplifier) -> float:
        dx = max(a.data.x0 - x, 0.0, x - (a.data.x1 - 1))
        dy = max(a.data.y0 - y, 0.0, y - (a.data.y1 - 1))
        return float(np.hypot(dx, dy))

    return min(amps, key=distance)


def _trimmed_wcs(
    header: fits.Header, amps: list[Amplifier], desc: str, shape: tuple[int, int]
) -> WCS:
    for key in ("CTYPE1", "CTYPE2"):
        hdr.require_str(header, key, desc)
    for key in ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2"):
        hdr.require_float(header, key, desc)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, naxis=2)
    except Exception as exc:
        raise exceptions.MalformedRawError(desc, "CTYPE1", f"the WCS is unusable: {exc}") from exc
    if not wcs.has_celestial:
        raise exceptions.MalformedRawError(desc, "CTYPE1", "the WCS is not celestial")
    offsets = {a.offset for a in amps}
    anchor = _anchor(amps, wcs.wcs.crpix)
    if len(offsets) > 1:
        # One linear WCS cannot follow amplifiers that were read out with overscan between
        # them; it stays exact on the amplifier holding the reference pixel.
        _LOG.warning(
            "%s: amplifiers have different raw offsets %s; WCS exact on %s only",
            desc,
            sorted(offsets),
            anchor.name,
        )
    dx, dy = anchor.offset
    wcs.wcs.crpix = wcs.wcs.crpix - np.array([dx, dy], dtype=float)
    wcs.pixel_shape = (shape[1], shape[0])
    return wcs


def _metadata(primary: fits.Header, ext: fits.Header, desc: str) -> dict[str, object]:
    obstype = hdr.require_str(primary, "OBSTYPE", desc).lower()
    needed = rawformat.required_primary_keys(obstype)
    meta: dict[str, object] = {
        "VISIT": hdr.require_int(primary, "EXPNUM", desc),
        "DETECTOR": hdr.require_int(ext, "CCDNUM", desc),
        "DETPOS": hdr.require_str(ext, "DETPOS", desc),
        "BAND": hdr.require_band(primary, desc) if "FILTER" in needed else filters.NO_FILTER,
        "OBSTYPE": obstype,
        "MJD": hdr.require_start_tai(primary, desc),
        "DATE-OBS": hdr.require_str(primary, "DATE-OBS", desc),
        "EXPTIME": hdr.require_float(primary, "EXPTIME", desc),
        "BUNIT": "electron",
    }
    for key in ("TELRA", "TELDEC", "AIRMASS"):
        # A calibration raw sees no sky: its pointing is carried only if it has one.
        if key in needed or key in primary:
            meta[key] = hdr.require_float(primary, key, desc)
    return meta


def assemble_raw(hdul: fits.HDUList) -> exposure_mod.Exposure:
    """Overscan-subtract, trim and gain-correct a raw; see `assemble_with_saturation`."""
    return assemble_with_saturation(hdul)[0]


def assemble_with_saturation(hdul: fits.HDUList) -> tuple[exposure_mod.Exposure, np.ndarray]:
    """Overscan-subtract, trim and gain-correct a raw into an ``Exposure`` in electrons.

    Parameters
    ----------
    hdul : astropy.io.fits.HDUList
        A raw in the format of docs/architecture.md: primary header with exposure keys, one
        image extension of ``(ny_raw, nx_raw)`` ADU with detector keys and (required for a
        science raw, optional for a bias or flat) a TAN WCS on the raw grid.

    Returns
    -------
    exposure : Exposure
        ``image`` ``(ny, nx)`` float32 electrons (overscan-subtracted, no bias or flat yet);
        ``variance`` = max(image, 0) + read_noise**2 of the pixel's amplifier, electrons**2;
        ``mask`` with ``SAT`` where the raw ADU reached the amplifier's ``SATURAT``; ``wcs``
        on the trimmed grid (None for a calibration raw without one); metadata VISIT,
        DETECTOR, DETPOS, BAND, OBSTYPE, MJD (exposure start, TAI), DATE-OBS (as written),
        EXPTIME, BUNIT='electron', and TELRA, TELDEC, AIRMASS (a calibration raw's only if it
        has them).
    saturated : numpy.ndarray
        Flat indices (into the ``(ny, nx)`` grid) of the pixels flagged ``SAT``.

    Raises
    ------
    MalformedRawError
        A required keyword is missing or unusable (names the keyword).
    CorruptInputError
        The pixel data cannot be read.
    """
    desc, primary, ext, raw = _read_hdus(hdul)
    metadata = _metadata(primary, ext, desc)
    amps = read_amplifiers(ext, (int(raw.shape[0]), int(raw.shape[1])), desc)
    ny = max(a.out_y0 + a.data.shape[0] for a in amps)
    nx = max(a.out_x0 + a.data.shape[1] for a in amps)
    out = exposure_mod.Exposure(
        image=np.empty((ny, nx), np.float32),
        mask=np.zeros((ny, nx), np.int32),
        variance=np.empty((ny, nx), np.float32),
        metadata=metadata,
    )
    saturated = np.concatenate([_fill_amp(raw, amp, out) for amp in amps])
    if rawformat.needs_wcs(str(metadata["OBSTYPE"])) or "CTYPE1" in ext:
        out.wcs = _trimmed_wcs(ext, amps, desc, (ny, nx))
    out.metadata["GAINS"] = ",".join(f"{a.name}:{a.gain:g}" for a in amps)
    return out, saturated
