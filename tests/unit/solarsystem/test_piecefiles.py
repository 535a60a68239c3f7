"""The precompute's shard files: chunks written in any order and split give the same bytes,
and the split datasets are the per-region files: rows by id, the objects' orbit records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy_healpix import HEALPix

from shutterline.simulate import orbitcatalog
from shutterline.solarsystem import mpcorbits, piecefiles

TAG = "s000of001"
NIGHT = (61280.0, 1.0 / 12.0, 2)
SHAPE = (2, 10)  # two pieces a night, regions 0..9 (and -1, the fast ones)


def _chunks(n_chunks: int, rows: int) -> list[tuple[slice, piecefiles.Chunk]]:
    """Chunks of random rows over regions -1..9, two pieces per object; ids not in row order
    (a catalogue with a night's objects merged in under their own ids)."""
    rng = np.random.default_rng(3)
    ids = rng.permutation(n_chunks * rows) + 1000
    chunks = []
    for c in range(n_chunks):
        row = np.repeat(np.arange(c * rows, (c + 1) * rows), 2)
        region = rng.integers(-1, 10, len(row))
        ra, dec = _inside(region, rng)
        pieces: dict[str, np.ndarray] = {
            "id": ids[row].astype(np.int32),
            "piece": np.tile(np.arange(2, dtype=np.int16), rows),
            "c0": rng.normal(size=(len(row), 3)),
            "ra": ra,
            "dec": dec,
        }
        chunks.append(
            (slice(c * rows, (c + 1) * rows), piecefiles.sort_chunk(pieces, region, SHAPE))
        )
    return chunks


def _inside(region: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A centre inside each healpix4 region (one of its 16 healpix6 pixels, at random)."""
    hp = HEALPix(nside=piecefiles.ORBIT_NSIDE, order="nested")
    sub = np.maximum(region, 0) * 16 + rng.integers(0, 16, len(region))
    ra, dec = hp.healpix_to_lonlat(sub)
    return np.asarray(ra.deg), np.asarray(dec.deg)


def _write(out: Path, chunks: list[tuple[slice, piecefiles.Chunk]], order: list[int]) -> None:
    """The shard's files, the chunks written in ``order`` (as workers would)."""
    catalog = mpcorbits.read_catalog(_catalog(out.parent, 1000 + 120))
    out.mkdir()
    counts = np.stack([c.counts for _, c in chunks])
    piecefiles.create(out, TAG, chunks[0][1].pieces.dtype, 2, 120)
    starts = piecefiles.destinations(counts)
    for i in order:
        rows, chunk = chunks[i]
        piecefiles.write_chunk(out, TAG, chunk, starts[i])
        piecefiles.write_orbits(out, TAG, catalog, rows, 0)
    piecefiles.finish(out, TAG, counts, catalog["id"][:120], NIGHT)


def test_sort_chunk_orders_by_piece_region_id_and_counts() -> None:
    (_, chunk), *_ = _chunks(1, 50)
    assert chunk.counts.shape == (2, 11) and chunk.counts.sum() == 100
    assert np.all(chunk.counts.sum(axis=1) == 50)  # every object has both pieces


def test_chunks_written_in_any_order_give_the_same_files(tmp_path: Path) -> None:
    chunks = _chunks(3, 40)
    _write(tmp_path / "a" / "out", chunks, [0, 1, 2])
    _write(tmp_path / "b" / "out", chunks, [2, 0, 1])
    a, b = tmp_path / "a" / "out", tmp_path / "b" / "out"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert len(names) == 2 + 2  # a file per piece, the orbits, the index
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not list(a.glob("*.partial"))


def test_split_gives_each_regions_rows_by_id_and_its_objects_orbits(tmp_path: Path) -> None:
    chunks = _chunks(3, 40)
    _write(tmp_path / "out", chunks, [1, 2, 0])
    catalog = mpcorbits.read_catalog(tmp_path / "catalog.npz")
    datasets = dict(piecefiles.split(tmp_path / "out", TAG))
    pieces = {k: v for k, v in datasets.items() if not k.startswith("o")}
    assert len(pieces) == 11 * 2  # every region (and fast) has rows of both pieces
    every = np.concatenate([c.pieces for _, c in chunks])
    rows = datasets["r0003.p001.s000of001.npz"]
    assert np.all(np.diff(rows["pieces"]["id"]) > 0) and np.all(rows["pieces"]["piece"] == 1)
    assert float(rows["piece_start_mjd"]) == 61280.0 + 1.0 / 12.0
    got = np.concatenate([v["pieces"] for k, v in datasets.items() if not k.startswith("o")])
    assert len(got) == len(every)  # every row once, unchanged
    key = ("piece", "id")
    np.testing.assert_array_equal(np.sort(got, order=key), np.sort(every, order=key))
    fast_ids = np.unique(
        np.concatenate([v["pieces"]["id"] for k, v in datasets.items() if k.startswith("fast")])
    )
    hp = HEALPix(nside=piecefiles.ORBIT_NSIDE, order="nested")
    for name, values in pieces.items():  # every object's record in its centre's pixel
        if name.startswith("fast"):
            continue
        pixel = hp.lonlat_to_healpix(
            values["pieces"]["ra"] * u.deg, values["pieces"]["dec"] * u.deg
        )
        for p, i in zip(pixel.tolist(), values["pieces"]["id"].tolist(), strict=True):
            assert i in datasets[f"o{p:05d}.s000of001.npz"]["orbits"]["id"]
            assert p // 16 == int(name[1:5])  # a healpix6 pixel of the row's region
    n_orbit_sets = len(datasets) - len(pieces)
    assert 11 < n_orbit_sets <= 1 + 10 * 16
    orbits = datasets["ofast.s000of001.npz"]["orbits"]
    assert np.array_equal(orbits["id"], fast_ids)
    rows_of = {int(i): k for k, i in enumerate(catalog["id"][:120])}  # the shard's rows
    assert np.array_equal(orbits["a"], catalog["a"][[rows_of[int(i)] for i in fast_ids]])


def _catalog(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "catalog.npz"
    if not path.exists():
        cat = orbitcatalog.synthesize(n, 1, 61200.0)
        cat["id"][:120] = np.random.default_rng(3).permutation(120) + 1000  # as the chunks'
        mpcorbits.write_catalog(path, cat)
    return path
