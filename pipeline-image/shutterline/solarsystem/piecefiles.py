"""The nightly precompute's files: per shard, one region-ordered file per piece, and its index.

A shard writes few files, whatever the number of regions:

- ``pieces.p{piece:03d}.sNNNofNNN.npy``: every row of one piece of the night (one per object),
  grouped by HEALPix region (the fast pieces, region -1, first), then by chunk of the
  catalogue, then by id. Memory-mapped by the lookup and by `split`.
- ``orbits.sNNNofNNN.npy``: the shard's ``mpc_orbits`` records, in catalogue order.
- ``index.sNNNofNNN.npz``: ``offsets`` (pieces x regions + 2): the rows of region ``r`` in
  piece ``p`` are ``offsets[p, r + 1]:offsets[p, r + 2]``; ``orbit_ids`` (sorted) and
  ``orbit_rows``, each id's row in the orbits file; the night's times.

Chunks are fixed (`precompute.shard_rows`) and each chunk's rows go to a place computed from
the counts of every chunk (`destinations`), so the bytes do not depend on which process wrote
a chunk, nor on how many processes there were. `split` cuts a shard into the per-region
datasets the backbone stores, rows sorted by id, and the orbit records per healpix6 pixel.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from astropy import units as u
from astropy_healpix import HEALPix

from shutterline.solarsystem import mpcorbits

__all__ = [
    "ORBIT_DTYPE",
    "ORBIT_NSIDE",
    "Chunk",
    "cone_pixels",
    "create",
    "destinations",
    "discard",
    "encode",
    "finish",
    "index_path",
    "offsets",
    "orbit_time",
    "orbits_path",
    "piece_time",
    "pieces_path",
    "records",
    "save",
    "shard_tags",
    "sort_chunk",
    "split",
    "write_chunk",
    "write_orbits",
]

#: HEALPix resolution (nested) of the orbit datasets: 0.9 degree pixels, healpix6.
ORBIT_NSIDE = 64
#: One ``mpc_orbits`` record of the orbits file (and of an orbit dataset).
ORBIT_DTYPE = np.dtype([(name, dt) for name, dt in mpcorbits.COLUMNS])


class Chunk(NamedTuple):
    """One chunk's pieces sorted by (piece, region, id), and the count of each
    (piece, region + 1) pair, shape ``(pieces, regions + 1)``."""

    pieces: npt.NDArray[np.void]
    counts: npt.NDArray[np.int64]


def pieces_path(out: Path, piece: int, tag: str) -> Path:
    """The file of one piece of the night of shard ``tag``."""
    return out / f"pieces.p{piece:03d}.{tag}.npy"


def orbits_path(out: Path, tag: str) -> Path:
    """The file of the shard's ``mpc_orbits`` records."""
    return out / f"orbits.{tag}.npy"


def index_path(out: Path, tag: str) -> Path:
    """The shard's index of row ranges per piece and region (written last)."""
    return out / f"index.{tag}.npz"


def records(columns: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.void]:
    """The columns as one structured array (a column of shape ``(n, ...)`` is a subarray)."""
    dtype = np.dtype([(k, v.dtype, v.shape[1:]) for k, v in columns.items()])
    out = np.empty(len(next(iter(columns.values()))), dtype=dtype)
    for name, values in columns.items():
        out[name] = values
    return out


def sort_chunk(
    pieces: dict[str, npt.NDArray[Any]], region: npt.NDArray[np.int64], shape: tuple[int, int]
) -> Chunk:
    """A chunk's piece columns as records sorted by (piece, region, id), with their counts;
    ``shape`` is (pieces of the night, regions)."""
    n_pieces, n_regions = shape
    order = np.lexsort((pieces["id"], region, pieces["piece"]))
    key = pieces["piece"].astype(np.int64) * (n_regions + 1) + region + 1
    counts = np.bincount(key, minlength=n_pieces * (n_regions + 1))
    return Chunk(records(pieces)[order], counts.reshape(n_pieces, n_regions + 1))


def destinations(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Where each chunk's rows of each (piece, region) start in the piece's file.

    ``counts`` is (chunks, pieces, regions + 1); so is the result. Region-major within a
    piece, then chunk order: the same for any split of the chunks over processes.
    """
    n_chunks, n_pieces, n_slots = counts.shape
    by_region = counts.transpose(1, 2, 0).reshape(n_pieces, -1)  # (piece, region, chunk)
    starts = np.cumsum(by_region, axis=1) - by_region
    return np.asarray(starts.reshape(n_pieces, n_slots, n_chunks).transpose(2, 0, 1), np.int64)


def offsets(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The index's row ranges: (pieces, regions + 2) boundaries from every chunk's counts."""
    total = counts.sum(axis=0)
    return np.asarray(np.concatenate([np.zeros((len(total), 1), np.int64), total.cumsum(1)], 1))


def write_chunk(out: Path, tag: str, chunk: Chunk, starts: npt.NDArray[np.int64]) -> None:
    """Write a chunk's rows into the shard's piece files (``.partial``, made beforehand) at
    ``starts`` (its (pieces, regions + 1) block of `destinations`)."""
    flat_counts, flat_starts = chunk.counts.ravel(), starts.ravel()
    group = np.repeat(np.arange(len(flat_counts)), flat_counts)
    within = np.arange(len(group)) - (np.cumsum(flat_counts) - flat_counts)[group]
    target = flat_starts[group] + within  # the rows are sorted by piece, then region
    edges = np.r_[0, np.cumsum(chunk.counts.sum(axis=1))]
    for piece in range(len(edges) - 1):
        a, b = edges[piece], edges[piece + 1]
        path = pieces_path(out, piece, tag)
        mm = np.load(_partial(path), mmap_mode="r+")
        if mm.dtype != chunk.pieces.dtype:  # assigning records of another layout would convert
            raise ValueError(f"{path}: rows {chunk.pieces.dtype} differ from {mm.dtype}")
        mm[target[a:b]] = chunk.pieces[a:b]
        del mm  # unmapped, not flushed: msync would wait for the disk; the rename does not


def write_orbits(out: Path, tag: str, catalog: mpcorbits.Catalog, rows: slice, first: int) -> None:
    """Write the ``mpc_orbits`` records of catalogue ``rows`` into the shard's orbits file."""
    mm = np.load(_partial(orbits_path(out, tag)), mmap_mode="r+")
    mm[rows.start - first : rows.stop - first] = records(
        {name: catalog[name][rows] for name, _ in mpcorbits.COLUMNS}
    )
    del mm


def create(out: Path, tag: str, piece_dtype: np.dtype[Any], n_pieces: int, n_rows: int) -> None:
    """The shard's piece and orbits files, sized, as ``.partial`` (renamed by `finish`)."""
    for piece in range(n_pieces):
        path = _partial(pieces_path(out, piece, tag))
        np.lib.format.open_memmap(path, mode="w+", dtype=piece_dtype, shape=(n_rows,))
    np.lib.format.open_memmap(
        _partial(orbits_path(out, tag)), mode="w+", dtype=ORBIT_DTYPE, shape=(n_rows,)
    )


def finish(
    out: Path,
    tag: str,
    counts: npt.NDArray[np.int64],
    ids: npt.NDArray[np.int32],
    night: tuple[float, float, int],
) -> None:
    """Rename the shard's files into place, then write its index (last: its presence says
    the shard is whole). ``ids`` are the shard's ids in catalogue order."""
    start, span, n_pieces = night
    index_path(out, tag).unlink(missing_ok=True)  # a rerun: no old index over new files
    for piece in range(n_pieces):
        _partial(pieces_path(out, piece, tag)).replace(pieces_path(out, piece, tag))
    _partial(orbits_path(out, tag)).replace(orbits_path(out, tag))
    order = np.argsort(ids, kind="stable")
    save(
        index_path(out, tag),
        {
            "offsets": offsets(counts),
            "orbit_ids": ids[order],
            "orbit_rows": order.astype(np.int64),
            **piece_time(start, span),
            **orbit_time(start, n_pieces * span),
        },
    )


def discard(out: Path, tag: str) -> None:
    """Remove the shard's unfinished (``.partial``) files: a failed run leaves none."""
    for path in out.glob(f"*.{tag}.*.partial"):
        path.unlink(missing_ok=True)


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def piece_time(start_mjd: float, span_days: float) -> dict[str, npt.NDArray[np.float64]]:
    """The 0-d arrays each piece dataset carries: its piece's start (MJD, TAI) and length."""
    return {
        "piece_start_mjd": np.array(start_mjd, np.float64),
        "piece_span_days": np.array(span_days, np.float64),
    }


def orbit_time(start_mjd: float, span_days: float) -> dict[str, npt.NDArray[np.float64]]:
    """The 0-d arrays each orbit dataset carries: its night's start (MJD, TAI) and length."""
    return {
        "night_start_mjd": np.array(start_mjd, np.float64),
        "night_span_days": np.array(span_days, np.float64),
    }


def split(out: Path, tag: str) -> Iterator[tuple[str, dict[str, npt.NDArray[Any]]]]:
    """The shard's per-region datasets, as (file name, arrays), one region at a time.

    ``r{region:04d}.p{piece:03d}.{tag}.npz`` (``fast...`` for region -1) holds a piece's rows
    of one region by id; ``o{pixel:05d}.{tag}.npz`` (``ofast...``) the ``mpc_orbits`` records,
    by id, of every object with a piece centred in that healpix6 pixel (of its region).

    Raises
    ------
    FileNotFoundError
        If the shard has no index (not precomputed, or not finished).
    """
    with np.load(index_path(out, tag), allow_pickle=False) as data:
        index = {k: data[k] for k in data.files}
    start, span = float(index["piece_start_mjd"]), float(index["piece_span_days"])
    bounds = index["offsets"]
    pixel: list[npt.NDArray[np.int64]] = []  # of each row's centre, healpix6; -1: fast
    ids: list[npt.NDArray[np.int32]] = []
    for piece in range(len(bounds)):
        mm = np.load(pieces_path(out, piece, tag), mmap_mode="r")
        for slot in np.flatnonzero(np.diff(bounds[piece])).tolist():
            rows = np.asarray(mm[bounds[piece, slot] : bounds[piece, slot + 1]])
            rows = rows[np.argsort(rows["id"], kind="stable")]
            pixel.append(_orbit_pixels(rows) if slot else np.full(len(rows), -1, np.int64))
            ids.append(rows["id"])
            where = "fast" if slot == 0 else f"r{slot - 1:04d}"
            times = piece_time(start + span * piece, span)
            yield f"{where}.p{piece:03d}.{tag}.npz", {"pieces": rows, **times}
        del mm
    yield from _split_orbits(out, tag, index, np.concatenate(pixel), np.concatenate(ids))


def _orbit_pixels(rows: npt.NDArray[np.void]) -> npt.NDArray[np.int64]:
    """The healpix6 (nested) pixel of each row's centre."""
    hp = HEALPix(nside=ORBIT_NSIDE, order="nested")
    ra, dec = (np.asarray(rows[k], np.float64) * u.deg for k in ("ra", "dec"))
    return np.asarray(hp.lonlat_to_healpix(ra, dec), np.int64)


def _split_orbits(
    out: Path,
    tag: str,
    index: dict[str, npt.NDArray[Any]],
    pixel: npt.NDArray[np.int64],
    ids: npt.NDArray[np.int32],
) -> Iterator[tuple[str, dict[str, npt.NDArray[Any]]]]:
    """Per healpix6 pixel, the records (by id) of the objects with a piece centred in it."""
    order = np.lexsort((ids, pixel))
    pixel, ids = pixel[order], ids[order]
    new = np.r_[True, (pixel[1:] != pixel[:-1]) | (ids[1:] != ids[:-1])]
    pixel, ids = pixel[new], ids[new]
    starts = np.flatnonzero(np.r_[True, pixel[1:] != pixel[:-1]])
    orbits = np.load(orbits_path(out, tag), mmap_mode="r")
    night = orbit_time(float(index["night_start_mjd"]), float(index["night_span_days"]))
    for a, b in zip(starts.tolist(), np.r_[starts[1:], len(pixel)].tolist(), strict=True):
        rows = index["orbit_rows"][np.searchsorted(index["orbit_ids"], ids[a:b])]
        where = "ofast" if pixel[a] < 0 else f"o{pixel[a]:05d}"
        yield f"{where}.{tag}.npz", {"orbits": np.asarray(orbits[rows]), **night}


def encode(arrays: dict[str, Any]) -> bytes:
    """``arrays`` as the bytes of an uncompressed ``.npz`` (a dataset's file)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save(path: Path, arrays: dict[str, Any]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz``, atomically (a temporary file, renamed)."""
    tmp = _partial(path)
    tmp.write_bytes(encode(arrays))
    tmp.replace(path)


def shard_tags(shards: int) -> Sequence[str]:
    """The tags of every shard of a night split ``shards`` ways."""
    return [f"s{i:03d}of{shards:03d}" for i in range(shards)]


def cone_pixels(nside: int, center_radec: tuple[float, float], reach_deg: float) -> list[int]:
    """The nested HEALPix pixels of ``nside`` within ``reach_deg`` of the centre (degrees)."""
    hp = HEALPix(nside=nside, order="nested")
    ra, dec = (v * u.deg for v in center_radec)
    return [int(p) for p in np.unique(hp.cone_search_lonlat(ra, dec, reach_deg * u.deg))]
