"""The precompute's file writing: ranges of regions written apart give the files written at once."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from shutterline.simulate import orbitcatalog
from shutterline.solarsystem import mpcorbits, piecefiles


def _chunks(n_chunks: int, rows: int) -> tuple[list[piecefiles.Chunk], np.ndarray]:
    """Chunks of random rows over regions -1..9, two pieces per object, ids ascending."""
    rng = np.random.default_rng(3)
    chunks, regions = [], []
    for c in range(n_chunks):
        row = np.repeat(np.arange(c * rows, (c + 1) * rows), 2)
        region = rng.integers(-1, 10, len(row))
        pieces: dict[str, np.ndarray] = {
            "id": (1000 + row).astype(np.int32),
            "piece": np.tile(np.arange(2, dtype=np.int16), rows),
            "c0": rng.normal(size=(len(row), 3)),
        }
        chunks.append(piecefiles.sort_chunk(pieces, region, row))
        regions.append(region)
    return chunks, np.concatenate(regions)


def test_balanced_ranges_cover_every_region_once() -> None:
    counts = np.array([5, 0, 100, 1, 1, 1, 90, 0, 2, 0, 0, 50])
    ranges = piecefiles.balanced_ranges(counts, 4)
    assert ranges[0][0] == -1 and ranges[-1][1] == len(counts) - 1
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert all(lo < hi for lo, hi in ranges)
    rows = [int(counts[lo + 1 : hi + 1].sum()) for lo, hi in ranges]
    assert sum(rows) == counts.sum()
    assert max(rows) <= counts.max() + counts.sum() / 4  # no range holds two big regions
    assert piecefiles.balanced_ranges(np.array([0, 7]), 3) == [(-1, 1)]


def test_sort_chunk_orders_by_region_piece_id() -> None:
    (chunk,), _ = _chunks(1, 50)
    key = chunk.region * 10**6 + chunk.pieces["piece"] * 10**4 + chunk.pieces["id"]
    assert np.all(np.diff(key) > 0)
    assert np.array_equal(chunk.pieces["id"] - 1000, chunk.row)


def test_ranges_written_apart_give_the_same_files(tmp_path: Path) -> None:
    chunks, region = _chunks(3, 40)
    catalog = mpcorbits.read_catalog(_catalog(tmp_path, 1000 + 120))
    night = (61280.0, 1.0 / 12.0, 2)
    whole, split = tmp_path / "whole", tmp_path / "split"
    whole.mkdir()
    split.mkdir()
    files = piecefiles.write_regions(whole, chunks, (-1, 10), catalog, night, "s000of001")
    counts = np.bincount(region + 1, minlength=11)
    ranges = piecefiles.balanced_ranges(counts, 4)
    assert len(ranges) > 1
    assert files == sum(
        piecefiles.write_regions(split, chunks, r, catalog, night, "s000of001") for r in ranges
    )
    names = sorted(p.name for p in whole.iterdir())
    assert names == sorted(p.name for p in split.iterdir())
    assert len(names) == 11 * 2 + 11  # every region (and fast) has both pieces and orbits
    for name in names:
        assert (whole / name).read_bytes() == (split / name).read_bytes(), name
    with np.load(whole / "r0003.p001.s000of001.npz") as data:
        rows = data["pieces"]
        assert np.all(np.diff(rows["id"]) > 0) and np.all(rows["piece"] == 1)
        assert float(data["piece_start_mjd"]) == 61280.0 + 1.0 / 12.0
    with np.load(whole / "ofast.s000of001.npz") as data:
        expected = np.unique(np.concatenate([c.row[c.region == -1] for c in chunks]))
        assert np.array_equal(data["orbits"]["id"], catalog["id"][expected])
    assert not list(whole.glob("*.partial"))


def _catalog(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "catalog.npz"
    mpcorbits.write_catalog(path, orbitcatalog.synthesize(n, 1, 61200.0))
    return path
