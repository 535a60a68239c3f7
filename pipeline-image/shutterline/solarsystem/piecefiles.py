"""The nightly precompute's files: a shard's pieces and orbit records, per region.

`shutterline.solarsystem.precompute` computes pieces chunk by chunk; each chunk's rows come
here sorted by region (`sort_chunk`), and the files of a range of regions are written from
every chunk's rows of that range (`write_regions`). The worker processes of a shard write
disjoint ranges of regions at once, so a file's bytes do not depend on which process wrote
it, nor on how many there were: rows by id, the same as one process writing everything.

Layout (one shard ``sNNNofNNN`` of a night):

- ``r{region:04d}.p{piece:03d}.sNNNofNNN.npz``: one structured array of rows, ``pieces``,
  and the piece's time (`piece_time`); ``fast.p{piece:03d}...`` the pieces sweeping more
  than the precompute's fast radius (region -1), read by every lookup.
- ``o{region:04d}.sNNNofNNN.npz``: the ``mpc_orbits`` records (``orbits``) of every object
  with a piece in the region, once a night, and the night's time (`orbit_time`); ``ofast``
  those of the fast ones.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from shutterline.solarsystem import mpcorbits

__all__ = [
    "Chunk",
    "balanced_ranges",
    "orbit_time",
    "piece_time",
    "records",
    "save",
    "sort_chunk",
    "write_regions",
]

#: Fewer than this many pieces a night: the file key is ``region * _PIECE_KEY + piece``.
_PIECE_KEY = 1000


class Chunk(NamedTuple):
    """One chunk's pieces sorted by (region, piece, id): the rows, their regions, and the
    catalogue row of each (for the orbit files). Arrays in memory or memory-mapped."""

    pieces: npt.NDArray[np.void]
    region: npt.NDArray[np.int64]
    row: npt.NDArray[np.int64]


def records(columns: dict[str, npt.NDArray[Any]]) -> npt.NDArray[np.void]:
    """The columns as one structured array (a column of shape ``(n, ...)`` is a subarray)."""
    dtype = np.dtype([(k, v.dtype, v.shape[1:]) for k, v in columns.items()])
    out = np.empty(len(next(iter(columns.values()))), dtype=dtype)
    for name, values in columns.items():
        out[name] = values
    return out


def sort_chunk(
    pieces: dict[str, npt.NDArray[Any]], region: npt.NDArray[np.int64], row: npt.NDArray[np.int64]
) -> Chunk:
    """A chunk's piece columns as records, sorted by (region, piece, id)."""
    order = np.lexsort((pieces["id"], pieces["piece"], region))
    return Chunk(records(pieces)[order], region[order], row[order])


def balanced_ranges(counts: npt.NDArray[np.int64], parts: int) -> list[tuple[int, int]]:
    """Cut regions ``-1 .. len(counts) - 2`` (``counts[k]`` rows in region ``k - 1``) into at
    most ``parts`` ranges ``[lo, hi)`` of about equal rows (a range's files are one task)."""
    edges = np.searchsorted(np.cumsum(counts), np.linspace(0, counts.sum(), parts + 1)[1:-1])
    bounds = np.unique(np.r_[0, edges + 1, len(counts)].clip(0, len(counts)))
    return [(int(lo) - 1, int(hi) - 1) for lo, hi in itertools.pairwise(bounds)]


def piece_time(start_mjd: float, span_days: float) -> dict[str, npt.NDArray[np.float64]]:
    """The 0-d arrays each piece file carries: its piece's start (MJD, TAI) and length."""
    return {
        "piece_start_mjd": np.array(start_mjd, np.float64),
        "piece_span_days": np.array(span_days, np.float64),
    }


def orbit_time(start_mjd: float, span_days: float) -> dict[str, npt.NDArray[np.float64]]:
    """The 0-d arrays each orbit file carries: its night's start (MJD, TAI) and length."""
    return {
        "night_start_mjd": np.array(start_mjd, np.float64),
        "night_span_days": np.array(span_days, np.float64),
    }


def write_regions(
    out: Path,
    chunks: Sequence[Chunk],
    regions: tuple[int, int],
    catalog: mpcorbits.Catalog,
    night: tuple[float, float, int],
    tag: str,
) -> int:
    """Write the piece and orbit files of regions ``[lo, hi)`` from every chunk's rows.

    ``night`` is (start MJD TAI, piece length in days, pieces). Returns the files written.
    """
    lo, hi = regions
    taken = []
    for chunk in chunks:  # each chunk is sorted by region: a slice, not a scan
        a, b = np.searchsorted(chunk.region, [lo, hi])
        taken.append((chunk.pieces[a:b], chunk.region[a:b], chunk.row[a:b]))
    rows = np.concatenate([t[0] for t in taken])
    region = np.concatenate([t[1] for t in taken])
    if not len(rows):
        return 0
    row = np.concatenate([t[2] for t in taken])
    order = np.lexsort((rows["id"], rows["piece"], region))  # chunk order is by id already
    rows, region, row = rows[order], region[order], row[order]
    return _write_pieces(out, rows, region, night, tag) + _write_orbits(
        out, catalog, row, region, night, tag
    )


def _groups(key: npt.NDArray[np.int64]) -> list[tuple[int, int]]:
    """``[begin, end)`` of each run of equal values in a sorted key."""
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return list(zip(starts.tolist(), np.r_[starts[1:], len(key)].tolist(), strict=True))


def _write_pieces(
    out: Path,
    rows: npt.NDArray[np.void],
    region: npt.NDArray[np.int64],
    night: tuple[float, float, int],
    tag: str,
) -> int:
    """One file per region and piece of sorted ``rows``, rows by id."""
    start, span, _ = night
    piece = rows["piece"].astype(np.int64)
    groups = _groups(region * _PIECE_KEY + piece)
    for begin, end in groups:
        where = "fast" if region[begin] < 0 else f"r{region[begin]:04d}"
        arrays = {"pieces": rows[begin:end], **piece_time(start + span * piece[begin], span)}
        save(out / f"{where}.p{piece[begin]:03d}.{tag}.npz", arrays)
    return len(groups)


def _write_orbits(
    out: Path,
    catalog: mpcorbits.Catalog,
    row: npt.NDArray[np.int64],
    region: npt.NDArray[np.int64],
    night: tuple[float, float, int],
    tag: str,
) -> int:
    """Per region, the ``mpc_orbits`` records (by id) of every object with a piece there.

    Once a night, not once per piece: a detector's lookup takes the records of the few
    objects it finds from the orbit files of its regions, for the alerts.
    """
    start, span, n_pieces = night
    groups = _groups(region)
    for begin, end in groups:
        take = np.unique(row[begin:end])
        take = take[np.argsort(catalog["id"][take], kind="stable")]
        orbits = records({name: catalog[name][take] for name, _ in mpcorbits.COLUMNS})
        where = "ofast" if region[begin] < 0 else f"o{region[begin]:04d}"
        save(out / f"{where}.{tag}.npz", {"orbits": orbits, **orbit_time(start, n_pieces * span)})
    return len(groups)


def save(path: Path, arrays: dict[str, Any]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz``, atomically (a temporary file, renamed).

    Built in memory and written at once: a shard writes thousands of small files, and the
    zip member writes are a third of each file's cost when they go to the file one by one.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(buffer.getbuffer())
    tmp.replace(path)
