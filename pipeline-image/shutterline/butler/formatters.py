"""Formatters for Shutterline's own Python types, and the storage classes that use them.

``Exposure`` is stored as the multi-extension FITS of `shutterline.images.exposure`
(IMAGE, MASK, VARIANCE, [PSF]); a raw is stored byte for byte as the camera wrote it and read
back as an in-memory ``astropy.io.fits.HDUList`` (no memory map, file closed). Catalogs use
daf_butler's own ``ArrowAstropy`` storage class (Parquet through pyarrow). The solar-system
pieces are a ``dict`` of numpy arrays in one uncompressed ``.npz`` (no pickles), as
`shutterline.solarsystem.precompute` writes them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from astropy.io import fits
from lsst.daf.butler import FormatterV2
from lsst.resources import ResourcePath

from shutterline.images import exposure as exposure_io

__all__ = [
    "EXPOSURE_STORAGE_CLASS",
    "PIECES_STORAGE_CLASS",
    "RAW_STORAGE_CLASS",
    "TABLE_STORAGE_CLASS",
    "ExposureFormatter",
    "PiecesFormatter",
    "RawFormatter",
    "butler_config",
]

EXPOSURE_STORAGE_CLASS = "ShutterlineExposure"
RAW_STORAGE_CLASS = "ShutterlineRaw"
#: daf_butler's astropy-table-as-Parquet storage class.
TABLE_STORAGE_CLASS = "ArrowAstropy"
PIECES_STORAGE_CLASS = "ShutterlinePieces"


class ExposureFormatter(FormatterV2):
    """Read and write `shutterline.images.Exposure` as multi-extension FITS."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits"})
    can_read_from_local_file = True

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Read an exposure written by `write_local_file`."""
        return exposure_io.read_exposure(path)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write ``in_memory_dataset`` (an `Exposure`) to a local FITS file."""
        exposure_io.write_exposure(in_memory_dataset, uri.ospath)


class RawFormatter(FormatterV2):
    """Read a raw FITS file into memory; write an ``HDUList`` unchanged."""

    default_extension = ".fits"
    supported_extensions = frozenset({".fits", ".fz"})
    can_read_from_local_file = True

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """The whole file as an ``HDUList`` whose data are loaded and whose file is closed."""
        return read_raw_file(path)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write an ``HDUList`` as it is."""
        in_memory_dataset.writeto(uri.ospath, overwrite=True)


class PiecesFormatter(FormatterV2):
    """Read and write a ``dict`` of numpy arrays as an ``.npz`` file (no pickled objects)."""

    default_extension = ".npz"
    supported_extensions = frozenset({".npz"})
    can_read_from_local_file = True

    def read_from_local_file(
        self, path: str, component: str | None = None, expected_size: int = -1
    ) -> Any:
        """Every array of the file, loaded (the file is closed)."""
        return read_pieces(path)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write the arrays of ``in_memory_dataset``."""
        write_pieces(in_memory_dataset, uri.ospath)


def read_pieces(path: str) -> dict[str, Any]:
    """The arrays of an ``.npz`` file, in memory."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def write_pieces(arrays: dict[str, Any], path: str) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` at ``path`` (no extension added)."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)


#: What astropy warns, and then reads on past, when a file is shorter than its headers say.
_TRUNCATED = "File may have been truncated"


def read_raw_file(path: str) -> fits.HDUList:
    """Read a raw completely into memory (headers and 16-bit unsigned pixels).

    Raises
    ------
    ValueError
        The file is shorter than its headers say. Astropy only warns and reads on (or, where
        warnings are errors, stops with the file left open); here it is an error that says
        so, whatever the warning filters, and the file is closed.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=_TRUNCATED)
        hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    truncated = [str(w.message) for w in caught if str(w.message).startswith(_TRUNCATED)]
    for warning in caught:  # the others, as they would have been shown
        if not str(warning.message).startswith(_TRUNCATED):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if truncated:
        hdul.close()
        raise ValueError(f"{path} is truncated: {truncated[0]}")
    try:
        for hdu in hdul:
            _ = hdu.data  # load now: loaded data outlive the file, which we close
    finally:
        hdul.close()
    return hdul


def butler_config() -> dict[str, Any]:
    """The parts of the repository configuration that are Shutterline's own.

    Storage classes and formatters for our types, and checksums recorded for every file so
    a damaged copy is detected when it is transferred (see `shutterline.butler.checksums`).
    """
    module = __name__
    return {
        "storageClasses": {
            EXPOSURE_STORAGE_CLASS: {"pytype": "shutterline.images.exposure.Exposure"},
            RAW_STORAGE_CLASS: {"pytype": "astropy.io.fits.HDUList"},
            PIECES_STORAGE_CLASS: {"pytype": "dict"},
        },
        "datastore": {
            "cls": "shutterline.butler.datastore.ShutterlineFileDatastore",
            "checksum": True,
            "formatters": {
                EXPOSURE_STORAGE_CLASS: f"{module}.ExposureFormatter",
                RAW_STORAGE_CLASS: f"{module}.RawFormatter",
                PIECES_STORAGE_CLASS: f"{module}.PiecesFormatter",
            },
        },
    }
