"""``Exposure``: image, mask and variance planes with a WCS, a PSF and metadata."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from shutterline.images import fitsread
from shutterline.images.mask import MaskBit

__all__ = ["Exposure", "njy_per_unit", "read_exposure", "read_exposure_astropy", "write_exposure"]


def njy_per_unit(metadata: dict[str, Any], what: str = "image") -> float:
    """The factor from an image's units to nJy: ``NJY_PER_UNIT``, or 1 if ``BUNIT = 'nJy'``.

    The one place every stage reads it from, so that all agree on the fallback.

    Raises
    ------
    ValueError
        Neither is in ``metadata`` (the message names ``what``).
    """
    if "NJY_PER_UNIT" in metadata:
        return float(metadata["NJY_PER_UNIT"])
    if str(metadata.get("BUNIT", "")).lower() == "njy":
        return 1.0
    raise ValueError(f"{what} has neither NJY_PER_UNIT nor BUNIT='nJy' in its metadata")


@dataclasses.dataclass
class Exposure:
    """A calibrated or intermediate image.

    Attributes
    ----------
    image : numpy.ndarray
        ``(ny, nx)`` float32. Units are in ``metadata['BUNIT']`` (``'electron'`` after
        instrument signature removal, ``'nJy'`` for coadds and calibrated images).
    mask : numpy.ndarray
        ``(ny, nx)`` int32 bit plane, bits from `MaskBit`.
    variance : numpy.ndarray
        ``(ny, nx)`` float32, in units of ``image`` squared.
    wcs : astropy.wcs.WCS or None
        Celestial WCS of this pixel grid (origin 0 in astropy calls).
    psf : numpy.ndarray or None
        ``(k, k)`` float32 PSF image at the centre, odd ``k``, sums to 1.
    metadata : dict
        FITS-compatible keys: ``VISIT``, ``DETECTOR``, ``BAND``, ``MJD``, ``EXPTIME``,
        ``BUNIT``, ``NJY_PER_UNIT`` (photometric calibration), ``PSF_FWHM`` (pixels), ...
    """

    image: np.ndarray
    mask: np.ndarray
    variance: np.ndarray
    wcs: WCS | None = None
    psf: np.ndarray | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @classmethod
    def blank(cls, shape: tuple[int, int], wcs: WCS | None = None) -> Exposure:
        """An all-zero exposure of ``shape`` with every pixel flagged ``NO_DATA``."""
        return cls(
            image=np.zeros(shape, np.float32),
            mask=np.full(shape, int(MaskBit.NO_DATA), np.int32),
            variance=np.zeros(shape, np.float32),
            wcs=wcs,
        )


def _header(exposure: Exposure) -> fits.Header:
    header = exposure.wcs.to_header(relax=True) if exposure.wcs is not None else fits.Header()
    for key, value in exposure.metadata.items():
        # Long keys (NJY_PER_UNIT) use HIERARCH cards so they survive a round trip whole.
        name = key.upper()
        header[name if len(name) <= 8 and "-" not in name else f"HIERARCH {name}"] = value
    return header


def _big_endian(data: np.ndarray, dtype: str) -> np.ndarray:
    """A big-endian copy (FITS's order) made in one pass: astropy then writes it as it is.

    Given a native array, astropy swaps it in place, writes and swaps it back; with the
    converting copy this wrote before, that was three passes over every plane.
    """
    return np.asarray(data).astype(np.dtype(dtype).newbyteorder(">"))


def write_exposure(exposure: Exposure, path: str | os.PathLike[str]) -> None:
    """Write ``exposure`` as multi-extension FITS: IMAGE, MASK, VARIANCE, [PSF]."""
    header = _header(exposure)
    hdus: list[Any] = [fits.PrimaryHDU(header=fits.Header(header))]
    hdus.append(fits.ImageHDU(_big_endian(exposure.image, "f4"), header, name="IMAGE"))
    mask_header = fits.Header(header)
    for bit in MaskBit:
        mask_header[f"MP_{bit.name}"[:8]] = (bit.bit_length() - 1, f"mask plane {bit.name}")
    hdus.append(fits.ImageHDU(_big_endian(exposure.mask, "i4"), mask_header, name="MASK"))
    hdus.append(fits.ImageHDU(_big_endian(exposure.variance, "f4"), header, name="VARIANCE"))
    if exposure.psf is not None:
        hdus.append(fits.ImageHDU(_big_endian(exposure.psf, "f4"), name="PSF"))
    fits.HDUList(hdus).writeto(path, overwrite=True)


def _native(data: np.ndarray, dtype: type) -> np.ndarray:
    """``data`` as native-endian ``dtype``; FITS's big-endian arrays are swapped in place.

    Swapping the array astropy just read costs one pass and no second array (a converting
    copy allocated 32 MB per plane and doubled the formatter's time).
    """
    if data.dtype.byteorder == ">" and data.dtype.newbyteorder("=") == np.dtype(dtype):
        return data.byteswap(inplace=True).view(np.dtype(dtype))
    return np.asarray(data, dtype)


_WCS_PREFIXES = ("CRPIX", "CRVAL", "CTYPE", "CUNIT", "CD1_", "CD2_", "PC1_", "PC2_", "CDELT")
_STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "EXTNAME", "PCOUNT"}


def _metadata(header: fits.Header) -> dict[str, Any]:
    skip = _STRUCTURAL | {"GCOUNT", "XTENSION", "WCSAXES", "RADESYS", "EQUINOX", "LONPOLE"}
    skip |= {"COMMENT", "HISTORY"}
    return {k: header[k] for k in header if k and k not in skip and not k.startswith(_WCS_PREFIXES)}


def read_exposure_astropy(path: str | os.PathLike[str]) -> Exposure:
    """`read_exposure` through astropy alone: the slow reference the fast route replaced, kept
    for the tests that hold the two equal and for ``bench_load``'s side by side."""
    with fits.open(path, memmap=False) as hdul:
        header = hdul["IMAGE"].header
        psf = _native(hdul["PSF"].data, np.float32) if "PSF" in hdul else None
        return Exposure(
            image=_native(hdul["IMAGE"].data, np.float32),
            mask=_native(hdul["MASK"].data, np.int32),
            variance=_native(hdul["VARIANCE"].data, np.float32),
            wcs=WCS(header) if "CTYPE1" in header else None,
            psf=psf,
            metadata=_metadata(header),
        )


_BITPIX: dict[np.dtype[Any], int] = {np.dtype(np.float32): -32, np.dtype(np.int32): 32}


def _plane(f: Any, hdu: fitsread.Hdu, dtype: type) -> np.ndarray:
    """``hdu``'s array as native ``dtype``, read by `fitsread.read_plane`; a plane stored as
    another type or scaled (not as `write_exposure` writes it) is read through astropy."""
    scaled = any(key in hdu.keys for key in fitsread.SCALING)
    if hdu.keys.get("BITPIX") != _BITPIX[np.dtype(dtype)] or scaled:
        with fits.open(f.name, memmap=False) as hdul:
            return _native(hdul[hdu.name].data, dtype)
    return fitsread.read_plane(f, hdu.data_offset, hdu.shape, dtype, f"{f.name} {hdu.name}")


def read_exposure(path: str | os.PathLike[str]) -> Exposure:
    """Read a file written by `write_exposure`.

    The planes and the WCS cards are read from the file's own bytes
    (`shutterline.images.fitsread`): half the time of astropy's own route.

    Raises
    ------
    ValueError
        The file is truncated or lacks an IMAGE, MASK or VARIANCE extension.
    """
    with open(path, "rb") as f:
        hdus = {hdu.name: hdu for hdu in fitsread.read_hdus(f)}
        missing = [name for name in ("IMAGE", "MASK", "VARIANCE") if name not in hdus]
        if missing:
            raise ValueError(f"{path}: not an exposure file, no {', '.join(missing)} extension")
        image = hdus["IMAGE"]
        header = image.header()
        return Exposure(
            image=_plane(f, image, np.float32),
            mask=_plane(f, hdus["MASK"], np.int32),
            variance=_plane(f, hdus["VARIANCE"], np.float32),
            wcs=fitsread.wcs_from_block(image.block, header) if "CTYPE1" in header else None,
            psf=_plane(f, hdus["PSF"], np.float32) if "PSF" in hdus else None,
            metadata=_metadata(header),
        )
