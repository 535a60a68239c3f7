"""The nightly solar-system pieces in the repository: stored by the precompute, found per detector.

`shutterline.solarsystem.precompute` writes one file per sky region, piece of the night and
shard. Each becomes an ``ss_pieces`` dataset (data id: the region's ``healpix4`` pixel) in the
RUN of its piece and shard, `run_name`; the fast movers' file becomes that RUN's
``ss_fast_pieces``. A RUN per piece lets a detector's plan pick the piece of its exposure
time with one collection query and then only its footprint's regions, so the pre-cache copies
exactly the few files the lookup reads. Shards write disjoint RUNs, so the pods of an Indexed
Job never collide, and a retried shard skips what it stored already (same bytes).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy_healpix import HEALPix
from lsst.daf.butler import Butler, DatasetRef

from shutterline.butler import datasettypes, formatters, names, storage

__all__ = ["SWEEP_PAD_DEG", "find_pieces", "run_name", "store_pieces"]

_LOG = logging.getLogger(__name__)

#: The widest a regional piece sweeps from its centre (`precompute.FAST_RADIUS_DEG`): regions
#: this far outside a footprint can still hold an object crossing it.
SWEEP_PAD_DEG = 0.5
_NSIDE = 16  # healpix4
_FILE = re.compile(r"^(?:r(\d{4})|fast)\.p\d{3}\.s(\d{3})of(\d{3})\.npz$")
_RUN = re.compile(
    re.escape(names.SS_PIECES_COLLECTION) + r"/(\d+\.\d{6})\+(\d+\.\d{6})d/s\d{3}of\d{3}$"
)


def run_name(start_mjd: float, span_days: float, shard: int, shards: int) -> str:
    """The RUN of one piece of the night (start MJD TAI, length in days) and one shard."""
    return (
        f"{names.SS_PIECES_COLLECTION}/{start_mjd:.6f}+{span_days:.6f}d/s{shard:03d}of{shards:03d}"
    )


def _register(butler: Butler) -> None:
    """The two dataset types (a repository made before they existed lacks them)."""
    wanted = {names.SS_PIECES, names.SS_FAST_PIECES}
    for dataset_type in datasettypes.dataset_types(butler.dimensions):
        if dataset_type.name in wanted:
            butler.registry.registerDatasetType(dataset_type)


def store_pieces(butler: Butler, directory: Path, shard: int, shards: int) -> int:
    """Store shard ``shard`` of ``shards``'s piece files from ``directory``; datasets stored.

    Raises
    ------
    ValueError
        If a file of the shard is not a piece file (it lacks the piece's time).
    """
    _register(butler)
    tag = f".s{shard:03d}of{shards:03d}.npz"
    items: list[tuple[dict[str, np.ndarray], DatasetRef]] = []
    existing: dict[str, set[object]] = {}
    for path in sorted(directory.glob(f"*{tag}")):
        match = _FILE.match(path.name)
        if match is None:
            continue
        arrays = formatters.read_pieces(str(path))
        if "piece_start_mjd" not in arrays or "piece_span_days" not in arrays:
            raise ValueError(f"{path}: not a piece file (no piece_start_mjd/piece_span_days)")
        run = run_name(
            float(arrays["piece_start_mjd"]), float(arrays["piece_span_days"]), shard, shards
        )
        if run not in existing:
            butler.registry.registerRun(run)
            existing[run] = {
                tuple(ref.dataId.required.values())
                for name in (names.SS_PIECES, names.SS_FAST_PIECES)
                for ref in butler.query_datasets(name, collections=run, explain=False, limit=None)
            }
        dataset, data_id = (
            (names.SS_PIECES, {names.SS_PIECES_PIXELIZATION: int(match.group(1))})
            if match.group(1) is not None
            else (names.SS_FAST_PIECES, {})
        )
        if tuple(data_id.values()) in existing[run]:
            continue  # a retried shard: these bytes are stored already
        items.append((arrays, storage.make_ref(butler, dataset, data_id, run)))
    storage.put_many_checksummed(butler, items)
    _LOG.info("stored %d piece datasets of shard %d/%d", len(items), shard, shards)
    return len(items)


def _runs_at(butler: Butler, mjd: float) -> list[str]:
    """The RUNs (every shard) of the piece of the night that holds ``mjd`` (TAI)."""
    runs = butler.registry.queryCollections(f"{names.SS_PIECES_COLLECTION}/*")
    found = []
    for run in runs:
        match = _RUN.match(run)
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
    Empty if the repository has no pieces for that time.
    """
    runs = _runs_at(butler, mjd)
    if not runs:
        return []
    hp = HEALPix(nside=_NSIDE, order="nested")
    reach = (radius_deg + SWEEP_PAD_DEG) * u.deg
    pixels = np.unique(
        hp.cone_search_lonlat(center_radec[0] * u.deg, center_radec[1] * u.deg, reach)
    )
    regional = butler.query_datasets(
        names.SS_PIECES,
        collections=runs,
        where=f"{names.SS_PIECES_PIXELIZATION} IN (pixels)",
        bind={"pixels": [int(p) for p in pixels]},
        with_dimension_records=True,
        find_first=False,
        explain=False,
        limit=None,
    )
    fast = butler.query_datasets(
        names.SS_FAST_PIECES,
        collections=runs,
        with_dimension_records=True,
        find_first=False,
        explain=False,
        limit=None,
    )
    return sorted([*regional, *fast], key=lambda r: (r.run, r.datasetType.name, str(r.dataId)))
