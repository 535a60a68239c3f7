"""Writing datasets so that their checksums are recorded, and verifying them later.

daf_butler's file datastore records a checksum only when the file it stores is local at
the moment of storing (``computeChecksum`` returns None for S3). So every
dataset Shutterline puts into a repository is first written to a local temporary file with
the same formatter the datastore would use, then ingested: the checksum comes from the
local bytes, whatever the datastore's backend. The pre-cache recomputes it on the copy
(`shutterline.butler.fetch`, `shutterline.butler.checksums`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow.parquet as pq
from lsst.daf.butler import Butler, DataCoordinate, DatasetRef, FileDataset
from lsst.daf.butler.formatters import parquet

from shutterline.butler import formatters
from shutterline.images import exposure as exposure_io

__all__ = [
    "ingest_local",
    "make_ref",
    "put_checksummed",
    "put_many_checksummed",
    "write_local",
]

_PARQUET_FORMATTER = "lsst.daf.butler.formatters.parquet.ParquetFormatter"


def _write_table(table: Any, path: str) -> None:
    pq.write_table(parquet.astropy_to_arrow(table), path)


def _write_raw(hdul: Any, path: str) -> None:
    hdul.writeto(path, overwrite=True)


_WRITERS: dict[str, tuple[Callable[[Any, str], None], str, str]] = {
    formatters.EXPOSURE_STORAGE_CLASS: (
        exposure_io.write_exposure,
        f"{formatters.__name__}.ExposureFormatter",
        ".fits",
    ),
    formatters.RAW_STORAGE_CLASS: (_write_raw, f"{formatters.__name__}.RawFormatter", ".fits"),
    formatters.TABLE_STORAGE_CLASS: (_write_table, _PARQUET_FORMATTER, ".parq"),
    formatters.PIECES_STORAGE_CLASS: (
        formatters.write_pieces,
        f"{formatters.__name__}.PiecesFormatter",
        ".npz",
    ),
}


def make_ref(butler: Butler, dataset_type: str, data_id: Mapping[str, Any], run: str) -> DatasetRef:
    """A resolved ref for a new dataset of ``dataset_type`` in ``run``."""
    resolved = butler.get_dataset_type(dataset_type)
    coordinate = DataCoordinate.standardize(dict(data_id), dimensions=resolved.dimensions)
    return DatasetRef(resolved, coordinate, run=run)


def put_checksummed(butler: Butler, obj: Any, ref: DatasetRef) -> DatasetRef:
    """Store ``obj`` as the resolved ``ref`` with its checksum recorded.

    The caller registers the run and the dimension records; the dataset lands in
    ``ref.run``. Equivalent to ``butler.put`` but the datastore sees a local file.
    """
    put_many_checksummed(butler, [(obj, ref)])
    return ref


def put_many_checksummed(butler: Butler, items: Sequence[tuple[Any, DatasetRef]]) -> None:
    """`put_checksummed` for many datasets in one ingest (one registry transaction)."""
    with tempfile.TemporaryDirectory(prefix="shutterline-put-") as tmp:
        written = [
            (write_local(obj, ref.datasetType.storageClass_name, os.path.join(tmp, str(i))), ref)
            for i, (obj, ref) in enumerate(items)
        ]
        ingest_local(butler, written)


def write_local(obj: Any, storage_class: str, stem: str) -> str:
    """Write ``obj`` as the datastore's formatter for ``storage_class`` would, to ``stem``
    plus its extension; the path, for `ingest_local` (which may run in another process)."""
    writer, _, extension = _WRITERS[storage_class]
    path = stem + extension
    writer(obj, path)
    return path


def ingest_local(butler: Butler, written: Sequence[tuple[str, DatasetRef]]) -> None:
    """Move files written by `write_local` into the repository as their refs, checksummed,
    in one ingest (one registry transaction: all of them or none)."""
    datasets = []
    for path, ref in written:
        formatter = _WRITERS[ref.datasetType.storageClass_name][1]
        datasets.append(FileDataset(path=path, refs=[ref], formatter=formatter))
    if datasets:
        butler.ingest(*datasets, transfer="move")
