"""Postage-stamp cutouts as FITS bytes, the form the Rubin alert schema carries them in.

Each cutout is a small multi-extension FITS file like the ones Rubin's pipeline writes: an
empty primary HDU, then ``IMAGE`` (float32), ``MASK`` (int32, ``MP_*`` keys name the bits)
and ``VARIANCE`` (float32), each with the WCS of the cutout's own pixel grid, and ``PSF``
when the exposure has one. Pixels beyond the exposure's edge are NaN in image and variance and
``NO_DATA`` in the mask, so every cutout is ``size x size``.

Speed: an alert needs three cutouts, and astropy's generic FITS writer costs milliseconds per
file. `CutoutMaker` formats each header once per exposure and per cutout only rewrites the
two ``CRPIX`` cards and copies ``size**2`` big-endian pixels; the output is standard FITS that
astropy reads and verifies (see the tests).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod

__all__ = ["CutoutMaker", "make_cutout", "make_cutouts"]

_BLOCK = 2880
_CARD = 80


def _card(key: str, value: object, comment: str = "") -> str:
    return fits.Card(key, value, comment).image


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % _BLOCK)


def _header_bytes(cards: Iterable[str]) -> bytes:
    text = "".join(cards) + "END".ljust(_CARD)
    return _pad(text.encode("ascii"), b" ")


def _crpix_card(axis: int, value: float) -> str:
    # Fixed-format real, right-justified in columns 11-30 as the FITS standard wants.
    return f"CRPIX{axis}  = {value:>20.8f}".ljust(_CARD)


class CutoutMaker:
    """Cutouts of one exposure.

    Parameters
    ----------
    exposure : Exposure
        Image, mask, variance ``(ny, nx)``; a WCS is required.
    size : int
        Side of the square cutout in pixels.
    """

    def __init__(self, exposure: exposure_mod.Exposure, size: int = 30) -> None:
        if exposure.wcs is None:
            raise ValueError("cannot make cutouts of an exposure without a WCS")
        self.exposure = exposure
        self.size = int(size)
        header = exposure.wcs.to_header(relax=True)
        self._crpix = (float(header["CRPIX1"]), float(header["CRPIX2"]))
        wcs_cards = [c.image for c in header.cards if not str(c.keyword).startswith("CRPIX")]
        bunit = str(exposure.metadata.get("BUNIT", ""))
        # Every cutout in nJy, as the alert's fluxes: a calexp in electrons is scaled.
        self._scale = 1.0
        if bunit != "nJy" and "NJY_PER_UNIT" in exposure.metadata:
            self._scale, bunit = float(exposure.metadata["NJY_PER_UNIT"]), "nJy"
        self._primary = _header_bytes(
            [_card("SIMPLE", True), _card("BITPIX", 8), _card("NAXIS", 0), _card("EXTEND", True)]
            + [
                _card(k, exposure.metadata[k])
                for k in ("VISIT", "DETECTOR", "BAND", "MJD")
                if k in exposure.metadata
            ]
        )
        masks = [_card(f"MP_{b.name}"[:8], b.bit_length() - 1) for b in mask_mod.MaskBit]
        self._ext = {
            "IMAGE": self._ext_cards("IMAGE", -32, [*wcs_cards, _card("BUNIT", bunit)]),
            "MASK": self._ext_cards("MASK", 32, wcs_cards + masks),
            "VARIANCE": self._ext_cards("VARIANCE", -32, wcs_cards),
        }
        self._psf = self._psf_hdu(exposure.psf)

    def _ext_cards(self, name: str, bitpix: int, extra: list[str]) -> list[str]:
        return [
            _card("XTENSION", "IMAGE"),
            _card("BITPIX", bitpix),
            _card("NAXIS", 2),
            _card("NAXIS1", self.size),
            _card("NAXIS2", self.size),
            _card("PCOUNT", 0),
            _card("GCOUNT", 1),
            _card("EXTNAME", name),
            *extra,
        ]

    def _psf_hdu(self, psf: npt.NDArray[np.float32] | None) -> bytes:
        if psf is None:
            return b""
        ny, nx = psf.shape
        cards = [
            _card("XTENSION", "IMAGE"),
            _card("BITPIX", -32),
            _card("NAXIS", 2),
            _card("NAXIS1", nx),
            _card("NAXIS2", ny),
            _card("PCOUNT", 0),
            _card("GCOUNT", 1),
            _card("EXTNAME", "PSF"),
        ]
        return _header_bytes(cards) + _pad(psf.astype(">f4").tobytes(), b"\0")

    def corner(self, x: float, y: float) -> tuple[int, int]:
        """``(x0, y0)``: pixel of the exposure at the cutout's first pixel."""
        half = self.size // 2
        return int(np.floor(x + 0.5)) - half, int(np.floor(y + 0.5)) - half

    def _stamps(
        self, x0: int, y0: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        exp, n = self.exposure, self.size
        ny, nx = exp.shape
        if x0 >= 0 and y0 >= 0 and x0 + n <= nx and y0 + n <= ny:
            win = np.s_[y0 : y0 + n, x0 : x0 + n]
            return exp.image[win], exp.mask[win], exp.variance[win]
        image = np.full((n, n), np.nan, np.float32)
        mask = np.full((n, n), int(mask_mod.MaskBit.NO_DATA), np.int32)
        variance = np.full((n, n), np.nan, np.float32)
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + n, ny), min(x0 + n, nx)
        if ys < ye and xs < xe:
            dst = np.s_[ys - y0 : ye - y0, xs - x0 : xe - x0]
            image[dst] = exp.image[ys:ye, xs:xe]
            mask[dst] = exp.mask[ys:ye, xs:xe]
            variance[dst] = exp.variance[ys:ye, xs:xe]
        return image, mask, variance

    def cutout_at_pixel(self, x: float, y: float) -> bytes:
        """FITS bytes of the cutout centred on pixel ``(x, y)`` (0-based)."""
        x0, y0 = self.corner(x, y)
        image, mask, variance = self._stamps(x0, y0)
        if self._scale != 1.0:
            image = image * np.float32(self._scale)
            variance = variance * np.float32(self._scale**2)
        crpix = _crpix_card(1, self._crpix[0] - x0) + _crpix_card(2, self._crpix[1] - y0)
        parts = [self._primary]
        for name, plane, dtype in (
            ("IMAGE", image, ">f4"),
            ("MASK", mask, ">i4"),
            ("VARIANCE", variance, ">f4"),
        ):
            parts.append(_header_bytes([*self._ext[name], crpix]))
            parts.append(_pad(np.ascontiguousarray(plane, dtype=dtype).tobytes(), b"\0"))
        parts.append(self._psf)
        return b"".join(parts)

    def cutout(self, ra: float, dec: float) -> bytes:
        """FITS bytes of the cutout centred on sky position ``(ra, dec)`` (degrees)."""
        assert self.exposure.wcs is not None  # checked in __init__
        x, y = self.exposure.wcs.all_world2pix(ra, dec, 0)
        return self.cutout_at_pixel(float(x), float(y))


def make_cutouts(
    exposure: exposure_mod.Exposure,
    ra: npt.ArrayLike,
    dec: npt.ArrayLike,
    size: int = 30,
) -> list[bytes]:
    """Cutouts of ``exposure`` at many positions (degrees), one WCS transform for all."""
    maker = CutoutMaker(exposure, size)
    assert exposure.wcs is not None
    xs, ys = exposure.wcs.all_world2pix(np.atleast_1d(ra), np.atleast_1d(dec), 0)
    return [maker.cutout_at_pixel(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]


def make_cutout(exposure: exposure_mod.Exposure, ra: float, dec: float, size: int = 30) -> bytes:
    """One ``size x size`` FITS cutout of ``exposure`` centred on ``(ra, dec)`` degrees."""
    return make_cutouts(exposure, [ra], [dec], size)[0]
