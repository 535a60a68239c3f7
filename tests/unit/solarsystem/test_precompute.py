"""Nightly Chebyshev pieces against an independent ephemeris; the per-detector lookup.

The reference is the simulator's truth (`shutterline.simulate.ephemeris.observe`): skyfield's
own Kepler orbits in SPICE's ECLIPJ2000 frame, DE421, the WGS84 site and skyfield's
iterative light-time solution, one object at a time. The pieces share only the DE421 data
and the site model with it; orbit propagation, frames, light time and fitting are their own.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from astropy.table import Table

from shutterline.simulate import ephemeris, orbitcatalog
from shutterline.solarsystem import chebyshev, lookup, mpcorbits, orbits, precompute

START = 61280.0
NIGHT = precompute.Night(START, 6)  # 12 h in 2 h pieces
MAS = np.deg2rad(1.0 / 3.6e6)


def _unit(ra: npt.ArrayLike, dec: npt.ArrayLike) -> np.ndarray:
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def _close_neo() -> Table:
    """An object 0.02 au outside the Earth, passing at 15 km/s: a fast piece (sweep > 0.1 deg)."""
    t = START + 0.25
    obs = precompute.observer_positions(np.array([t - 0.01, t, t + 0.01]))[:, 0]
    v_earth = (obs[2] - obs[0]) / 0.02
    r = obs[1] * 1.02
    kick = np.cross(obs[1], [0.0, 0.0, 1.0])
    v = v_earth + kick / np.linalg.norm(kick) * (15.0 / 1731.46)  # 15 km/s in au/day
    return orbits.elements_from_state(r, v, t, ids=[90000077], h_mag=25.0)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cat = orbitcatalog.merge_night(orbitcatalog.synthesize(10_000, 11, 61200.0), _close_neo())
    path = tmp_path_factory.mktemp("cat") / "catalog.npz"
    mpcorbits.write_catalog(path, cat)
    return path


@pytest.fixture(scope="module")
def pieces(catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pieces")
    precompute.run(catalog, out, NIGHT)
    return out


@functools.cache
def _contents(root: Path) -> dict[str, np.ndarray]:
    """All pieces of a directory (every shard), sorted by (id, piece); read once per root."""
    parts = []
    for path in sorted(root.glob("pieces.p???.s*.npy")):  # the pieces, not the orbit files
        parts.append(np.load(path))
    rows = np.concatenate(parts)
    merged = {k: rows[k] for k in rows.dtype.names or ()}
    order = np.lexsort((merged["piece"], merged["id"]))
    return {k: v[order] for k, v in merged.items()}


def _evaluate_all(root: Path, mjd: float) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: every piece of every file at ``mjd``: ids and unit vectors."""
    piece = int((mjd - START) / NIGHT.span_days)
    x = 2.0 * ((mjd - START) / NIGHT.span_days - piece) - 1.0
    data = _contents(root)
    sel = data["piece"] == piece
    coef = np.concatenate([data["c0"][sel][:, :, None], data["coef"][sel]], axis=2)
    v, _ = chebyshev.evaluate(coef, np.full(len(coef), x))
    return data["id"][sel], v / np.linalg.norm(v, axis=1, keepdims=True)


def test_pieces_match_independent_skyfield_within_10_mas(catalog: Path, pieces: Path) -> None:
    cat = mpcorbits.read_catalog(catalog)
    rng = np.random.default_rng(0)
    sample = np.concatenate(
        [
            rng.choice(np.flatnonzero(cat["orbit_type_int"] == t), 3, replace=False)
            for t in mpcorbits.ORBIT_TYPES.values()
            if np.any(cat["orbit_type_int"] == t) and t != mpcorbits.ORBIT_TYPES["night"]
        ]
        + [np.flatnonzero(cat["id"] == 90000077)]
    )
    assert len(np.unique(cat["orbit_type_int"][sample])) == 6  # every class and the fast NEO
    times = START + np.linspace(0.0005, 0.4995, 25)
    ra, dec, *_ = ephemeris.observe(mpcorbits.to_orbits_table(cat, sample), times)
    for k, t in enumerate(times):
        ids, vecs = _evaluate_all(pieces, t)
        order = np.argsort(ids)
        got = vecs[order][np.searchsorted(ids[order], cat["id"][sample])]
        err_mas = np.linalg.norm(got - _unit(ra[:, k], dec[:, k]), axis=1) / MAS
        assert err_mas.max() < 10.0, (t, cat["id"][sample][np.argmax(err_mas)], err_mas.max())


@pytest.mark.parametrize("centre_kind", ["dense", "fast", "wrap"])
def test_lookup_finds_everything_in_the_footprint_and_nothing_far(
    pieces: Path, centre_kind: str
) -> None:
    mjd, radius, pad = START + 0.25 + 0.013, 2.0, 0.05
    ids, vecs = _evaluate_all(pieces, mjd)
    if centre_kind == "wrap":
        centre = (0.5, 0.0)
    else:
        pick = np.flatnonzero(ids == 90000077)[0] if centre_kind == "fast" else 17
        v = vecs[pick]
        centre = (
            float(np.rad2deg(np.arctan2(v[1], v[0])) % 360),
            float(np.rad2deg(np.arcsin(v[2]))),
        )
    sep = np.rad2deg(np.arccos(np.clip(vecs @ _unit(*centre), -1, 1)))
    inside = set(ids[sep < radius + pad].tolist())
    found = lookup.lookup(pieces, centre, radius, mjd, pad)
    assert set(found["id"].tolist()) == inside
    if centre_kind != "wrap":
        assert len(inside) >= 1
    fsep = np.rad2deg(np.arccos(np.clip(_unit(found["ra"], found["dec"]) @ _unit(*centre), -1, 1)))
    assert np.all(fsep <= radius + pad + 1e-9)
    assert np.all(found["ra_err"] > 0) and np.all(np.isfinite(found["rate_ra"]))


def test_lookup_rates_match_the_track(pieces: Path) -> None:
    mjd = START + 0.3
    ids, vecs = _evaluate_all(pieces, mjd)
    v = vecs[np.flatnonzero(ids == 90000077)[0]]
    centre = (float(np.rad2deg(np.arctan2(v[1], v[0])) % 360), float(np.rad2deg(np.arcsin(v[2]))))
    now = lookup.lookup(pieces, centre, 0.01, mjd)
    before, after = (lookup.lookup(pieces, centre, 2.0, mjd + dt) for dt in (-5e-4, 5e-4))
    row, row0, row1 = (t[t["id"] == 90000077] for t in (now, before, after))
    cos_dec = np.cos(np.deg2rad(row["dec"][0]))
    dra = ((row1["ra"][0] - row0["ra"][0] + 180) % 360 - 180) * cos_dec / 1e-3
    ddec = (row1["dec"][0] - row0["dec"][0]) / 1e-3
    speed = np.hypot(dra, ddec)
    assert row["rate_ra"][0] == pytest.approx(dra, abs=1e-4 * speed)
    assert row["rate_dec"][0] == pytest.approx(ddec, abs=1e-4 * speed)
    assert np.hypot(row["rate_ra"][0], row["rate_dec"][0]) > 12.0  # deg/day: the fast tier
    with np.load(pieces / "index.s000of001.npz") as index:
        assert np.all(np.diff(index["offsets"][:, :2]) > 0)  # every piece has fast rows


def test_outside_the_night_is_an_error(pieces: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside the precomputed night"):
        lookup.lookup(pieces, (10.0, 0.0), 0.2, START + 0.6)
    with pytest.raises(FileNotFoundError, match="not a precomputed pieces directory"):
        lookup.lookup(tmp_path, (10.0, 0.0), 0.2, START)
    with pytest.raises(ValueError, match="shard index"):
        precompute.shard_rows(10, 2, 2)


@pytest.mark.slow
def test_shards_and_jobs_give_the_single_process_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cat = orbitcatalog.synthesize(21_000, 4, 61200.0)  # three chunks, the last a short one
    path = tmp_path / "catalog.npz"
    mpcorbits.write_catalog(path, cat)
    night = precompute.Night(START, 2)
    precompute.run(path, tmp_path / "one", night)
    precompute.run(path, tmp_path / "again", night)
    steps: dict[str, float] = {}
    server: dict[str, float] = {}
    with monkeypatch.context() as mp:  # one thread (earlier tests may have left some): fork
        mp.setattr(precompute.threading, "active_count", lambda: 1)
        precompute.run(path, tmp_path / "jobs", night, jobs=2, timings=steps)
    with monkeypatch.context() as mp:  # another thread: workers from the pool server
        mp.setattr(precompute.threading, "active_count", lambda: 2)
        precompute.run(path, tmp_path / "server", night, jobs=2, timings=server)
    assert (steps["workers_forked"], server["workers_forked"]) == (1.0, 0.0)
    assert steps["workers_cpu"] > 0 and server["workers_cpu"] > 0
    for shard in range(2):
        precompute.run(path, tmp_path / "shards", night, shard=shard, shards=2)
    one = _contents(tmp_path / "one")
    assert len(one["id"]) == 2 * 21_000
    for other in ("again", "jobs", "server", "shards"):
        got = _contents(tmp_path / other)
        for name, column in one.items():
            np.testing.assert_array_equal(got[name], column, err_msg=f"{other}: {name}")
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    for other in (
        "again",
        "jobs",
        "server",
    ):  # same inputs, same bytes, whichever process wrote them
        assert names == sorted(p.name for p in (tmp_path / other).iterdir()), other
        for name in names:
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / other / name).read_bytes()
    assert (tmp_path / "shards" / "pieces.json").exists()
    mjd = START + 0.1
    a = lookup.lookup(tmp_path / "one", (float(one["ra"][5]), float(one["dec"][5])), 1.0, mjd)
    b = lookup.lookup(tmp_path / "shards", (float(one["ra"][5]), float(one["dec"][5])), 1.0, mjd)
    assert len(a) >= 1
    for name in a.colnames:
        np.testing.assert_array_equal(a[name], b[name])


def test_a_failing_worker_fails_the_run_naming_why_and_leaves_nothing_half_written(
    catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise ArithmeticError("injected failure in a chunk")

    monkeypatch.setattr(precompute.threading, "active_count", lambda: 1)  # forked: patched
    monkeypatch.setattr(precompute, "piece_arrays", broken)
    with pytest.raises(RuntimeError, match="injected failure in a chunk"):
        precompute.run(catalog, tmp_path / "p", precompute.Night(START, 1), jobs=2)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == []  # no index, no .partial
