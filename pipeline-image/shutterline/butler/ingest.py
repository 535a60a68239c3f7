"""Ingest of raws, reference catalogs and asteroid orbits into a repository."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from astropy.table import Table
from lsst.daf.butler import Butler, DatasetRef, FileDataset
from tqdm import tqdm

from shutterline import exceptions
from shutterline.butler import names, rawheaders, records, refcat, storage

__all__ = ["expand_raw_paths", "ingest_orbits", "ingest_raws", "ingest_refcat"]

_LOG = logging.getLogger(__name__)
_RAW_FORMATTER = "shutterline.butler.formatters.RawFormatter"
_BATCH = 50


def expand_raw_paths(paths: Sequence[str | Path]) -> list[str]:
    """Files as given, and every ``*.fits``/``*.fits.fz`` below each directory, sorted.

    Paths are made absolute: the datastore reads relative paths against the repository root.
    """
    files: list[str] = []
    for path in (Path(p).absolute() for p in paths):
        if path.is_dir():
            files.extend(
                str(p) for p in sorted(path.rglob("*")) if p.name.endswith((".fits", ".fits.fz"))
            )
        else:
            files.append(str(path))
    return files


def _read_infos(files: list[str], progress: bool, skip_malformed: bool) -> list[rawheaders.RawInfo]:
    infos: list[rawheaders.RawInfo] = []
    for path in tqdm(files, desc="reading raw headers", unit="file", disable=not progress):
        try:
            infos.append(rawheaders.read_raw_info(path))
        except exceptions.MalformedRawError as exc:
            if not skip_malformed:
                raise
            _LOG.error("skipped: %s", exc)
    return infos


def _new_only(butler: Butler, infos: list[rawheaders.RawInfo]) -> list[rawheaders.RawInfo]:
    """Drop raws already in the repository, and repeats within the batch."""
    exposures = sorted({info.exposure for info in infos})
    existing: set[tuple[int, int]] = set()
    if exposures:
        refs = butler.query_datasets(
            names.RAW,
            collections=names.RAW_COLLECTION,
            where="instrument = inst AND exposure IN (exps)",
            bind={"inst": names.INSTRUMENT, "exps": exposures},
            explain=False,
            limit=None,
        )
        existing = {(int(ref.dataId["exposure"]), int(ref.dataId["detector"])) for ref in refs}
    fresh: list[rawheaders.RawInfo] = []
    for info in infos:
        key = (info.exposure, info.detector)
        if key in existing:
            _LOG.warning(
                "already ingested, skipped: %s (exposure %d, detector %d)", info.path, *key
            )
            continue
        existing.add(key)
        fresh.append(info)
    return fresh


def _ingest_batch(
    butler: Butler, batch: list[rawheaders.RawInfo], transfer: str
) -> list[DatasetRef]:
    refs = [
        storage.make_ref(butler, names.RAW, info.data_id, names.RAW_COLLECTION) for info in batch
    ]
    with butler.transaction():
        for element, element_records in records.observation_records(batch):
            butler.registry.insertDimensionData(element, *element_records, skip_existing=True)
        datasets = [
            FileDataset(path=info.path, refs=[ref], formatter=_RAW_FORMATTER)
            for info, ref in zip(batch, refs, strict=True)
        ]
        butler.ingest(*datasets, transfer=transfer)
    return refs


def ingest_raws(
    butler: Butler,
    paths: Sequence[str | Path],
    progress: bool = True,
    transfer: str = "copy",
    skip_malformed: bool = False,
) -> list[DatasetRef]:
    """Register raws: exposure, visit and region records from their headers, then the files.

    Parameters
    ----------
    butler : lsst.daf.butler.Butler
        A writeable Butler on a repository made by `shutterline.butler.repo.create_repo`.
    paths : sequence of str or Path
        Raw files, or directories searched recursively for ``*.fits``.
    progress : bool
        Show progress bars.
    transfer : str
        How files enter the datastore (``copy`` by default; ``direct`` leaves them in place).
    skip_malformed : bool
        Log and skip malformed files instead of raising.

    Returns
    -------
    list of lsst.daf.butler.DatasetRef
        The newly ingested raws. Raws already in the repository are skipped with a warning.

    Raises
    ------
    shutterline.exceptions.MalformedRawError
        A file lacks a required keyword or has an unusable value (naming file and keyword).
        All headers are checked before anything is written, so nothing is ingested.
    """
    files = expand_raw_paths(paths)
    infos = _new_only(butler, _read_infos(files, progress, skip_malformed))
    refs: list[DatasetRef] = []
    with tqdm(total=len(infos), desc="ingesting raws", unit="file", disable=not progress) as bar:
        for start in range(0, len(infos), _BATCH):
            batch = infos[start : start + _BATCH]
            refs.extend(_ingest_batch(butler, batch, transfer))
            bar.update(len(batch))
    _LOG.info("ingested %d raws (%d files given)", len(refs), len(files))
    return refs


def ingest_refcat(butler: Butler, paths: Sequence[str | Path], progress: bool = True) -> int:
    """Shard reference catalogs by htm7 pixel into ``ref_cat`` in ``refcats/sim``.

    Returns the number of shards written. Ingesting into a repository that already holds a
    shard for the same pixel raises ``ConflictingDefinitionError`` (shards are not merged).
    """
    tables = [Table.read(str(path)) for path in paths]
    return refcat.write_shards(butler, tables, progress=progress)


def ingest_orbits(butler: Butler, path: str | Path) -> None:
    """Store the asteroid orbital elements table as ``ss_orbits`` in ``solarsystem/orbits``."""
    text = str(path)
    table = Table.read(text, format="ascii.csv") if text.endswith(".csv") else Table.read(text)
    ref = storage.make_ref(butler, names.ORBITS, {}, names.ORBITS_COLLECTION)
    storage.put_checksummed(butler, table, ref)
    _LOG.info("stored %d orbits from %s", len(table), text)
