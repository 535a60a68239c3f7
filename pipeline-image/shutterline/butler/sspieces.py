"""The nightly solar-system pieces in the repository: stored by the precompute, found per detector.

`shutterline.solarsystem.precompute` writes one region-ordered file per piece of the night
and shard, with an index of row ranges per region; `shutterline.solarsystem.piecefiles.split`
cuts it here into one dataset per sky region, piece and shard: an ``ss_pieces`` dataset (data
id: the region's ``healpix4`` pixel) in the RUN of its piece and shard, `run_name`; the fast
movers' rows become that RUN's ``ss_fast_pieces``. Datasets per region, not the whole file
with byte ranges: the plan, the checksummed pre-cache copy and the retry that skips what is
stored all work per dataset, and a detector needs a few hundred kB out of hundreds of MB.
A RUN per piece lets a detector's plan pick the piece of its exposure time with one
collection query and then only its footprint's regions, so the pre-cache copies exactly the
few datasets the lookup reads. Shards write disjoint RUNs, so the pods of an Indexed
Job never collide, and a retried shard skips what it stored already (same bytes).

The objects' ``mpc_orbits`` records are not in the pieces but once a night per healpix6
pixel (a sixteenth of a region: a detector fetches a few of them): ``ss_piece_orbits6``
and ``ss_fast_piece_orbits`` in the night's RUN per shard, `orbits_run_name`; the plan takes
those within the same reach. `add_storage_classes` brings a
repository made before the pieces' storage class up to date (the precompute runs it).
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import numpy as np
import yaml
from lsst.daf.butler import Butler, DatasetRef, StorageClassFactory
from lsst.resources import ResourcePath

from shutterline import exceptions
from shutterline.butler import datasettypes, formatters, names, storage
from shutterline.solarsystem import piecefiles

__all__ = [
    "SWEEP_PAD_DEG",
    "add_storage_classes",
    "find_pieces",
    "orbits_run_name",
    "run_name",
    "store_pieces",
]

_LOG = logging.getLogger(__name__)

#: The widest a regional piece sweeps from its centre (`precompute.FAST_RADIUS_DEG`): regions
#: this far outside a footprint can still hold an object crossing it.
SWEEP_PAD_DEG = 0.1
_NSIDE = 16  # healpix4

_FILE = re.compile(r"^(?:r(\d{4})|fast)\.p\d{3}\.s(\d{3})of(\d{3})\.npz$")
_ORBIT_FILE = re.compile(r"^o(?:(\d{5})|fast)\.s(\d{3})of(\d{3})\.npz$")
_TIMES = r"/(\d+\.\d{6})\+(\d+\.\d{6})d/s\d{3}of\d{3}$"
_RUN = re.compile(re.escape(names.SS_PIECES_COLLECTION) + _TIMES)
_ORBITS_RUN = re.compile(re.escape(names.SS_PIECE_ORBITS_COLLECTION) + _TIMES)
#: Dataset types of (region file, fast file), for piece files and orbit files.
#: The data id key of each kind's regional datasets.
_PIXELIZATION = {
    _FILE: names.SS_PIECES_PIXELIZATION,
    _ORBIT_FILE: names.SS_PIECE_ORBITS_PIXELIZATION,
}
_TYPES = {
    _FILE: (names.SS_PIECES, names.SS_FAST_PIECES),
    _ORBIT_FILE: (names.SS_PIECE_ORBITS, names.SS_FAST_PIECE_ORBITS),
}


def _times(prefix: str, start_mjd: float, span_days: float, shard: int, shards: int) -> str:
    return f"{prefix}/{start_mjd:.6f}+{span_days:.6f}d/s{shard:03d}of{shards:03d}"


def run_name(start_mjd: float, span_days: float, shard: int, shards: int) -> str:
    """The RUN of one piece of the night (start MJD TAI, length in days) and one shard."""
    return _times(names.SS_PIECES_COLLECTION, start_mjd, span_days, shard, shards)


def orbits_run_name(start_mjd: float, span_days: float, shard: int, shards: int) -> str:
    """The RUN of a night's orbit files (start MJD TAI, the night's length) and one shard."""
    return _times(names.SS_PIECE_ORBITS_COLLECTION, start_mjd, span_days, shard, shards)


def add_storage_classes(root: str) -> list[str]:
    """Add the storage classes and formatters a repository's ``butler.yaml`` lacks.

    A repository made before a storage class existed (``ShutterlinePieces`` came with the
    nightly pieces) cannot store or read its datasets. Idempotent: a repository that has
    them all is not written. Returns the names added.

    Raises
    ------
    FileNotFoundError
        If ``root`` holds no ``butler.yaml``.
    """
    path = ResourcePath(root, forceDirectory=True).join("butler.yaml")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no butler.yaml, not a repository")
    config = yaml.safe_load(path.read().decode()) or {}
    own = formatters.butler_config()
    added = []
    for keys, wanted in (
        (("storageClasses",), own["storageClasses"]),
        (("datastore", "formatters"), own["datastore"]["formatters"]),
    ):
        node = config
        for key in keys:
            node = node.setdefault(key, {})
        for name, value in wanted.items():
            if name not in node:
                node[name] = value
                added.append(name)
    if added:
        path.write(yaml.safe_dump(config, sort_keys=False).encode(), overwrite=True)
        _LOG.info("added %s to %s", sorted(set(added)), path)
    return sorted(set(added))


def _register(butler: Butler) -> None:
    """The piece and orbit dataset types (a repository made before they existed lacks them).

    Raises
    ------
    shutterline.exceptions.PermanentError
        If the repository's configuration lacks the pieces' storage class.
    """
    wanted = {
        names.SS_PIECES,
        names.SS_FAST_PIECES,
        names.SS_PIECE_ORBITS,
        names.SS_FAST_PIECE_ORBITS,
    }
    try:  # the configuration read when the repository was opened defines storage classes
        StorageClassFactory().getStorageClass(formatters.PIECES_STORAGE_CLASS)
    except KeyError as exc:
        raise exceptions.PermanentError(
            "this repository's butler.yaml lacks the storage class "
            f"{formatters.PIECES_STORAGE_CLASS} (made before the nightly pieces): run "
            "`shutterline orbits precompute --repo URI`, which adds it, or "
            "shutterline.butler.sspieces.add_storage_classes(URI)"
        ) from exc
    for dataset_type in datasettypes.dataset_types(butler.dimensions):
        if dataset_type.name in wanted:
            butler.registry.registerDatasetType(dataset_type)


def store_pieces(butler: Butler, directory: Path, shard: int, shards: int) -> int:
    """Store shard ``shard`` of ``shards``'s piece and orbit files from ``directory``.

    Returns the datasets stored (a retried shard skips those it stored already).

    Raises
    ------
    ValueError
        If a file of the shard is not a piece or orbit file (it lacks its time).
    shutterline.exceptions.PermanentError
        If the repository predates the pieces' storage class (the message names the fix).
    """
    _register(butler)
    tag = f".s{shard:03d}of{shards:03d}.npz"
    items: list[tuple[dict[str, np.ndarray], DatasetRef]] = []
    existing: dict[str, set[object]] = {}
    for name, arrays in piecefiles.split(directory, tag[1:-4]):  # one region at a time
        item = _item(name, arrays, shard, shards)
        if item is None:
            continue
        arrays, dataset, data_id, run = item
        if run not in existing:
            butler.registry.registerRun(run)
            existing[run] = {
                (ref.datasetType.name, *ref.dataId.required.values())
                for name in (*_TYPES[_FILE], *_TYPES[_ORBIT_FILE])
                for ref in butler.query_datasets(name, collections=run, explain=False, limit=None)
            }
        if (dataset, *data_id.values()) in existing[run]:
            continue  # a retried shard: these bytes are stored already
        items.append((arrays, storage.make_ref(butler, dataset, data_id, run)))
    storage.put_many_checksummed(butler, items)
    _LOG.info("stored %d piece and orbit datasets of shard %d/%d", len(items), shard, shards)
    return len(items)


def _item(
    name: str, arrays: dict[str, np.ndarray], shard: int, shards: int
) -> tuple[dict[str, np.ndarray], str, dict[str, int], str] | None:
    """A dataset's arrays, type, data id and RUN; None if its name is of neither kind.

    Raises
    ------
    ValueError
        If the arrays lack their piece's (or night's) time.
    """
    for pattern, (regional, fast) in _TYPES.items():
        match = pattern.match(name)
        if match is None:
            continue
        start, span = (
            ("piece_start_mjd", "piece_span_days")
            if pattern is _FILE
            else ("night_start_mjd", "night_span_days")
        )
        if start not in arrays or span not in arrays:
            raise ValueError(f"{name}: not a piece or orbit dataset (no {start}/{span})")
        namer = run_name if pattern is _FILE else orbits_run_name
        run = namer(float(arrays[start]), float(arrays[span]), shard, shards)
        if match.group(1) is None:
            return arrays, fast, {}, run
        return arrays, regional, {_PIXELIZATION[pattern]: int(match.group(1))}, run
    return None


def _runs_at(butler: Butler, mjd: float, pattern: re.Pattern[str], prefix: str) -> list[str]:
    """The RUNs (every shard) under ``prefix`` whose time span holds ``mjd`` (TAI)."""
    runs = butler.registry.queryCollections(f"{prefix}/*")
    found = []
    for run in runs:
        match = pattern.match(run)
        if match is not None:
            start, span = float(match.group(1)), float(match.group(2))
            if start <= mjd < start + span:
                found.append(run)
    return sorted(found)


def find_pieces(
    butler: Butler, mjd: float, center_radec: tuple[float, float], radius_deg: float
) -> list[DatasetRef]:
    """The piece datasets a footprint circle needs at ``mjd``: regions within reach, fast files.

    ``radius_deg`` should include the largest motion in a visit; `SWEEP_PAD_DEG` is added.
    The night's orbit records (the objects' ``mpc_orbits``) of the healpix6 pixels within
    the same reach come with them. Empty if the repository has no pieces for that time.
    """
    runs = _runs_at(butler, mjd, _RUN, names.SS_PIECES_COLLECTION)
    if not runs:
        return []
    orbit_runs = _runs_at(butler, mjd, _ORBITS_RUN, names.SS_PIECE_ORBITS_COLLECTION)
    query = functools.partial(
        butler.query_datasets,
        with_dimension_records=True,
        find_first=False,
        explain=False,
        limit=None,
    )
    where = f"{names.SS_PIECES_PIXELIZATION} IN (pixels)"
    bind = {"pixels": _pixels(_NSIDE, center_radec, radius_deg)}
    found = [*query(names.SS_PIECES, runs, where=where, bind=bind)]
    found += query(names.SS_FAST_PIECES, runs)
    if orbit_runs:  # none stored: the lookup names the objects that lack their records
        where = f"{names.SS_PIECE_ORBITS_PIXELIZATION} IN (pixels)"
        bind = {"pixels": _pixels(piecefiles.ORBIT_NSIDE, center_radec, radius_deg)}
        found += query(names.SS_PIECE_ORBITS, orbit_runs, where=where, bind=bind)
        found += query(names.SS_FAST_PIECE_ORBITS, orbit_runs)
    return sorted(found, key=lambda r: (r.run, r.datasetType.name, str(r.dataId)))


def _pixels(nside: int, center_radec: tuple[float, float], radius_deg: float) -> list[int]:
    """The nested pixels within ``radius_deg + SWEEP_PAD_DEG`` of the centre."""
    return piecefiles.cone_pixels(nside, center_radec, radius_deg + SWEEP_PAD_DEG)
