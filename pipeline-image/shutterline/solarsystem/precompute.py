"""The nightly precompute: every catalogue object's topocentric track as Chebyshev pieces.

For each object and each piece of the night (``span`` days, default 2 hours) the light-time
corrected astrometric direction from the observatory (CTIO) is sampled at the Chebyshev
nodes and fitted, per Cartesian component of the unit vector (no RA wrap, no pole). The
observer is the Earth from JPL DE421 (the ``de421`` package's arrays read by jplephem) plus
the site's geocentric vector from skyfield (WGS84, the Earth's rotation from skyfield's
built-in time scale), once per node time; the object is the two-body orbit of
`shutterline.solarsystem.orbits`, propagated for a whole chunk of objects per node.

Pieces are indexed by the HEALPix region (nested, ``REGION_NSIDE``) of their centre in one
file per piece of the night and shard, with an index of row ranges per region
(`shutterline.solarsystem.piecefiles` gives the layout); pieces that sweep more than
``FAST_RADIUS_DEG`` (close NEOs) are region -1, read by every lookup. ``pieces.json``
records the night and the layout. The same rows always give the same bytes, whatever the
number of worker processes: chunks are fixed, and each chunk's rows go to the place the
counts of every chunk give.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import de421
import numpy as np
import numpy.typing as npt
from astropy import units as u
from astropy_healpix import HEALPix
from jplephem import ephem
from skyfield import api
from skyfield.constants import AU_KM

from shutterline.camera import site as site_mod
from shutterline.solarsystem import chebyshev, mpcorbits, piecefiles
from shutterline.solarsystem import orbits as orbits_mod

__all__ = [
    "FAST_RADIUS_DEG",
    "REGION_NSIDE",
    "Night",
    "observer_positions",
    "piece_arrays",
    "run",
    "shard_rows",
]

_LOG = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]

#: HEALPix resolution of the regions, one file each (3.7 degree pixels, 3072 of them).
REGION_NSIDE = 16
#: Pieces sweeping more than this (degrees from their centre) are stored in the fast file.
FAST_RADIUS_DEG = 0.1
#: Objects per chunk: large enough for numpy, small enough for memory (~25 MB per chunk).
_CHUNK = 10_000


@dataclass(frozen=True)
class Night:
    """The time span of the pieces: ``n_pieces`` of ``span_days`` from ``mjd_start`` (TAI)."""

    mjd_start: float
    n_pieces: int
    span_days: float = 1.0 / 12.0
    degree: int = 7

    def node_times(self) -> FloatArray:
        """Node times (MJD, TAI), shape ``(n_pieces, degree + 1)``."""
        x = chebyshev.nodes(self.degree)
        starts = self.mjd_start + self.span_days * np.arange(self.n_pieces)
        return np.asarray(starts[:, None] + 0.5 * self.span_days * (x + 1.0), np.float64)


@functools.cache
def _ephemeris() -> ephem.Ephemeris:
    return ephem.Ephemeris(de421)


def observer_positions(mjds_tai: FloatArray, site: site_mod.Site = site_mod.CTIO) -> FloatArray:
    """The site and the Sun at each time: shape ``(len(mjds), 2, 3)``.

    ``[:, 0]`` is the site's heliocentric ICRS position (au), ``[:, 1]`` the Sun's velocity
    about the barycentre (au/day): light left the object when the Sun was ``v lt`` back,
    several milliarcseconds at main-belt distances.
    """
    ts = api.load.timescale(builtin=True)
    t = ts.tai_jd(np.asarray(mjds_tai, np.float64).ravel() + 2400000.5)
    eph = _ephemeris()
    whole, frac = t.whole, t.tdb_fraction
    emb = eph.position("earthmoon", whole, frac)
    earth = emb - eph.position("moon", whole, frac) * eph.earth_share
    sun, sun_v = eph.position_and_velocity("sun", whole, frac)
    topo = api.wgs84.latlon(site.lat_deg, site.lon_deg, elevation_m=site.height_m).at(t)
    helio = (earth - sun) / AU_KM + topo.position.au
    return np.asarray(np.stack([helio.T, sun_v.T / AU_KM], axis=1), np.float64)


def _directions(
    catalog: mpcorbits.Catalog, rows: slice, times: FloatArray, observer: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Unit vectors ``(m, k, 3)`` and distances ``(m, k)`` of the rows at each time.

    One Kepler solve per time; the place at emission ``t - lt`` is the second-order Taylor
    step back from ``t`` (the jerk term is under 1e-12 au over a light time), with ``lt``
    iterated twice: micro-arcsecond agreement with a full light-time solution.
    """
    table = mpcorbits.to_orbits_table(catalog, rows)
    m, k = len(table), len(times)
    unit, dist = np.empty((m, k, 3)), np.empty((m, k))
    for j, (t, (obs, sun_v)) in enumerate(zip(times, observer, strict=True)):
        r, v = orbits_mod.heliocentric_state(table, t)
        acc = -orbits_mod.GM_SUN * r / np.linalg.norm(r, axis=1, keepdims=True) ** 3
        lt = np.linalg.norm(r - obs, axis=1, keepdims=True) / orbits_mod.C_AU_PER_DAY
        for _ in range(2):
            rho = r - v * lt + 0.5 * acc * lt**2 - sun_v * lt - obs
            lt = np.linalg.norm(rho, axis=1, keepdims=True) / orbits_mod.C_AU_PER_DAY
        dist[:, j] = np.linalg.norm(rho, axis=1)
        unit[:, j] = rho / dist[:, j, None]
    return unit, dist


def piece_arrays(
    catalog: mpcorbits.Catalog, rows: slice, night: Night, observer: FloatArray
) -> dict[str, npt.NDArray[np.generic]]:
    """The pieces of ``rows`` (row-major: object, then piece), as columns.

    ``c0`` (float64, ``(p, 3)``) and ``coef`` (float32, ``(p, 3, degree)``) are the Chebyshev
    coefficients of the unit vector (the high orders are small, so float32 loses under
    0.1 mas); ``ra``, ``dec``, ``radius`` (deg) the centre and sweep; ``delta`` (au) the
    distance at mid-piece; ``sigma`` (arcsec) the catalogue-propagated 1-sigma error. The
    objects' ``mpc_orbits`` records go to the night's orbit files (`run`), once per object.
    """
    nodes_t = night.node_times()
    unit, dist = _directions(catalog, rows, nodes_t.ravel(), observer)
    m, d1 = unit.shape[0], night.degree + 1
    unit = unit.reshape(m, night.n_pieces, d1, 3).transpose(0, 1, 3, 2)  # (m, p, 3, nodes)
    coef = chebyshev.fit(unit).reshape(-1, 3, d1)
    ends = np.stack([chebyshev.evaluate(coef, np.full(len(coef), x))[0] for x in (-1.0, 1.0)])
    samples = np.concatenate([unit.reshape(-1, 3, d1), ends.transpose(1, 2, 0)], axis=2)
    centre = samples.mean(axis=2)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    cos_sweep = np.einsum("pcn,pc->pn", samples, centre).min(axis=1)
    ids = np.repeat(catalog["id"][rows], night.n_pieces)
    delta = dist.reshape(m, night.n_pieces, d1).mean(axis=2).ravel()
    mid = night.mjd_start + night.span_days * (np.arange(night.n_pieces) + 0.5)
    sigma = np.concatenate(
        [
            mpcorbits.position_sigma_arcsec(catalog, rows, delta.reshape(m, -1)[:, p], t)[:, None]
            for p, t in enumerate(mid)
        ],
        axis=1,
    ).ravel()
    return {
        "id": ids.astype(np.int32),
        "piece": np.tile(np.arange(night.n_pieces, dtype=np.int16), m),
        "c0": coef[:, :, 0],
        "coef": coef[:, :, 1:].astype(np.float32),
        "ra": np.rad2deg(np.arctan2(centre[:, 1], centre[:, 0])) % 360.0,
        "dec": np.rad2deg(np.arcsin(np.clip(centre[:, 2], -1.0, 1.0))),
        "radius": np.rad2deg(np.arccos(np.clip(cos_sweep, -1.0, 1.0))).astype(np.float32),
        "delta": delta.astype(np.float32),
        "sigma": sigma.astype(np.float32),
    }


def shard_rows(n_rows: int, shard: int, shards: int) -> list[slice]:
    """The chunks of rows of shard ``shard`` of ``shards``.

    The catalogue is cut into fixed chunks of ``_CHUNK`` rows whatever the sharding, and
    shards take whole chunks: every object is then computed in the same chunk (hence with the
    same vectorized iteration counts, bit for bit) for any ``--shards`` and ``--jobs``.

    Raises
    ------
    ValueError
        If the shard index is outside ``0..shards-1``.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard index {shard} outside 0..{shards - 1}")
    n_chunks = -(-n_rows // _CHUNK)
    first, last = shard * n_chunks // shards, (shard + 1) * n_chunks // shards
    return [slice(c * _CHUNK, min((c + 1) * _CHUNK, n_rows)) for c in range(first, last)]


def run(
    catalog_path: Path,
    out: Path,
    night: Night,
    *,
    shard: int = 0,
    shards: int = 1,
    jobs: int = 1,
    timings: dict[str, float] | None = None,
) -> int:
    """Precompute this shard's rows of the catalogue into ``out``; returns pieces written.

    Two passes over the chunks, spread over the ``jobs`` processes: each computes its chunks
    and keeps them (only their counts per region come back), then writes them into the
    shard's few files at the places the counts of every chunk give (`piecefiles`).
    ``timings``, if given, receives the seconds of each step: ``read`` (catalogue size, the
    site's positions, the files made), ``workers_ready`` (from the pool's start until the
    last worker has read the catalogue), ``compute``, ``write`` and ``meta`` (the index and
    ``pieces.json``), and with worker processes ``workers_cpu``, their CPU seconds,
    ``workers_start_cpu``, the part before their first chunk (reading the catalogue unless
    forked with it), and ``workers_forked`` (1: forked from this process, so its children;
    0: from a pool server).

    Raises
    ------
    ValueError
        If the catalogue file is not one, or the shard index is out of range.
    RuntimeError
        If a worker process fails (its traceback is in the message) or dies.
    """
    clock = _Clock(timings)
    chunks = shard_rows(mpcorbits.count_rows(catalog_path), shard, shards)
    tag = f"s{shard:03d}of{shards:03d}"
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    if chunks:  # more shards than chunks: this one has nothing to do
        total = _compute_and_write(catalog_path, out, night, chunks, tag, jobs, clock)
        _LOG.info("shard %s: %d pieces in %d files", tag, total, night.n_pieces + 2)
    _write_meta(out, night, shard, shards)
    clock("meta")
    return total


def _compute_and_write(
    catalog_path: Path,
    out: Path,
    night: Night,
    chunks: list[slice],
    tag: str,
    jobs: int,
    clock: _Clock,
) -> int:
    """The shard's pieces, computed and written by the team; its files removed on failure."""
    observer = observer_positions(night.node_times().ravel())
    first, n_rows = chunks[0].start, chunks[-1].stop - chunks[0].start
    try:
        piecefiles.create(out, tag, _piece_dtype(night), night.n_pieces, n_rows)
        clock("read")
        state = (str(catalog_path), night, observer, str(out), tag)
        with _team(state, chunks, jobs) as team:
            counts = team.compute()
            clock("compute")
            clock.timings_of("workers_ready", team.ready)
            team.write(piecefiles.destinations(counts))
            clock("write")
            if jobs > 1:
                clock.timings_of("workers_cpu", team.cpu)
                clock.timings_of("workers_start_cpu", team.read_cpu)
                clock.timings_of("workers_forked", float(team.forked))
        with np.load(catalog_path, allow_pickle=False) as data:
            ids = data["id"][first : first + n_rows]
        times = (night.mjd_start, night.span_days, night.n_pieces)
        piecefiles.finish(out, tag, counts, ids, times)
    except BaseException:
        piecefiles.discard(out, tag)  # nothing half-written left behind
        raise
    return int(counts.sum())


def _piece_dtype(night: Night) -> np.dtype[Any]:
    """The record of one piece (`piece_arrays`' columns, in order)."""
    head = [("id", "i4"), ("piece", "i2"), ("c0", "f8", (3,)), ("coef", "f4", (3, night.degree))]
    tail = [("ra", "f8"), ("dec", "f8"), ("radius", "f4"), ("delta", "f4"), ("sigma", "f4")]
    return np.dtype([*head, *tail])


class _Local:
    """One process's share of a shard: its chunks, computed, kept until written."""

    def __init__(
        self, state: tuple[str, Night, FloatArray, str, str], catalog: mpcorbits.Catalog | None
    ) -> None:
        catalog_path, self.night, self.observer, out, self.tag = state
        self.out = Path(out)
        self.catalog = mpcorbits.read_catalog(Path(catalog_path)) if catalog is None else catalog
        self.kept: dict[int, tuple[slice, piecefiles.Chunk]] = {}

    def compute(self, index: int, rows: slice) -> npt.NDArray[np.int64]:
        """Chunk ``index``'s pieces, kept sorted; their count per (piece, region + 1)."""
        pieces = piece_arrays(self.catalog, rows, self.night, self.observer)
        shape = (self.night.n_pieces, 12 * REGION_NSIDE**2)
        chunk = piecefiles.sort_chunk(pieces, _regions(pieces), shape)
        self.kept[index] = (rows, chunk)
        return chunk.counts

    def write(self, starts: dict[int, npt.NDArray[np.int64]], first: int) -> None:
        """Write every kept chunk at its ``starts`` and its rows' orbit records."""
        for index, (rows, chunk) in sorted(self.kept.items()):
            piecefiles.write_chunk(self.out, self.tag, chunk, starts[index])
            piecefiles.write_orbits(self.out, self.tag, self.catalog, rows, first)
        self.kept.clear()


def _serve(
    conn: Connection,
    state: tuple[str, Night, FloatArray, str, str],
    work: list[tuple[int, slice]],
    first: int,
    catalog: mpcorbits.Catalog | None,
) -> None:
    """A worker process: read the catalogue (unless forked with it), compute its chunks
    (sending their counts), then write them where the parent says. A failure goes back as
    its traceback.

    Each worker is made a session of its own: with the kernel's autogroup scheduling (on
    for desktop and test machines, not used inside a pod's cgroup) the processes of one
    session share one session's CPU share, so a pool in one session would get no more CPU
    than one process while other sessions are busy. A pod's shard is unaffected.
    """
    try:
        with contextlib.suppress(PermissionError):  # already a group leader: keep its session
            os.setsid()
        local = _Local(state, catalog)
        conn.send(("ready", time.time(), time.process_time()))
        for index, rows in work:
            conn.send(("chunk", index, local.compute(index, rows)))
        local.write(conn.recv(), first)
        conn.send(("done", time.process_time()))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise
    finally:
        conn.close()


class _Clock:
    """Seconds per step into ``timings`` (nothing when it is None)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings, self.start = timings, time.time()
        self.last = self.start

    def __call__(self, step: str) -> None:
        now = time.time()
        if self.timings is not None:
            self.timings[step] = now - self.last
        self.last = now

    def timings_of(self, step: str, seconds: float) -> None:
        """A step timed elsewhere (the workers' start, overlapping others)."""
        if self.timings is not None:
            self.timings[step] = max(0.0, seconds)


class _InProcess:
    """The team of one: the shard in this process (a pod's: no second start-up)."""

    def __init__(self, state: tuple[str, Night, FloatArray, str, str], chunks: list[slice]):
        start = time.time()
        self.local, self.chunks = _Local(state, None), chunks
        self.ready, self.cpu, self.read_cpu, self.forked = time.time() - start, 0.0, 0.0, False

    def compute(self) -> npt.NDArray[np.int64]:
        counts = []
        for index, rows in enumerate(self.chunks):
            counts.append(self.local.compute(index, rows))
            _LOG.info("shard %s: chunk %d/%d computed", self.local.tag, index + 1, len(self.chunks))
        return np.stack(counts)

    def write(self, starts: npt.NDArray[np.int64]) -> None:
        self.local.write(dict(enumerate(starts)), self.chunks[0].start)


class _Pool:
    """Worker processes; chunk ``i`` goes to worker ``i % jobs`` (chunks are of equal size).

    Forked from this process, with the catalogue read once here and shared, when it runs no
    other thread (a fork copies no thread, and a lock one held would stay held); else forked
    from a server that imports this module once (``forkserver``), each worker reading the
    catalogue itself.
    """

    def __init__(
        self, state: tuple[str, Night, FloatArray, str, str], chunks: list[slice], jobs: int
    ) -> None:
        self.forked = threading.active_count() == 1
        self.start = time.time()
        if self.forked:
            context: Any = multiprocessing.get_context("fork")
            catalog = mpcorbits.read_catalog(Path(state[0]))
        else:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            catalog = None
        self.tag, self.n_chunks = state[4], len(chunks)
        work = list(enumerate(chunks))
        self.conns, self.procs = [], []
        for w in range(min(jobs, len(chunks))):
            mine, theirs = context.Pipe()
            args = (theirs, state, work[w::jobs], chunks[0].start, catalog)
            proc = context.Process(target=_serve, args=args)
            proc.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(proc)
        self.ready, self.cpu, self.read_cpu = 0.0, 0.0, 0.0

    def _messages(self, conns: list[Connection]) -> Iterator[tuple[Connection, tuple[Any, ...]]]:
        """Messages from ``conns`` as they come; a worker's failure raises here."""
        for conn in multiprocessing.connection.wait(conns):
            assert isinstance(conn, Connection)
            proc = self.procs[self.conns.index(conn)]
            try:
                message = conn.recv()
            except EOFError:
                proc.join(5)
                raise RuntimeError(
                    f"precompute worker {proc.pid} died (exit code {proc.exitcode})"
                ) from None
            if message[0] == "error":
                raise RuntimeError(f"precompute worker {proc.pid} failed:\n{message[1]}")
            yield conn, message

    def compute(self) -> npt.NDArray[np.int64]:
        counts: dict[int, npt.NDArray[np.int64]] = {}
        while len(counts) < self.n_chunks:
            for _, message in self._messages(self.conns):
                if message[0] == "ready":
                    self.ready = max(self.ready, message[1] - self.start)
                    self.read_cpu += message[2]
                else:
                    counts[message[1]] = message[2]
                    _LOG.info(
                        "shard %s: chunk %d/%d computed", self.tag, len(counts), self.n_chunks
                    )
        return np.stack([counts[i] for i in range(self.n_chunks)])

    def write(self, starts: npt.NDArray[np.int64]) -> None:
        jobs = len(self.conns)
        for w, conn in enumerate(self.conns):
            conn.send({i: starts[i] for i in range(w, self.n_chunks, jobs)})
        waiting = list(self.conns)
        while waiting:
            for conn, message in self._messages(waiting):
                self.cpu += message[1]
                waiting.remove(conn)

    def close(self) -> None:
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self.conns:
            conn.close()


@contextlib.contextmanager
def _team(
    state: tuple[str, Night, FloatArray, str, str], chunks: list[slice], jobs: int
) -> Iterator[_InProcess | _Pool]:
    """This shard's processes: itself with one job, else a pool of ``jobs`` workers."""
    if jobs == 1:
        yield _InProcess(state, chunks)
        return
    pool = _Pool(state, chunks, jobs)
    try:
        yield pool
    finally:
        pool.close()


def _regions(pieces: dict[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.int64]:
    """Coarse region of every piece; -1 for the fast ones."""
    hp = HEALPix(nside=REGION_NSIDE, order="nested")
    ra = np.asarray(pieces["ra"], np.float64)
    dec = np.asarray(pieces["dec"], np.float64)
    region = np.asarray(hp.lonlat_to_healpix(ra * u.deg, dec * u.deg))
    return np.where(np.asarray(pieces["radius"]) > FAST_RADIUS_DEG, -1, region.astype(np.int64))


def _write_meta(out: Path, night: Night, shard: int, shards: int) -> None:
    """``pieces.json``: the night and layout (every shard writes the same, atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        **asdict(night),
        "region_nside": REGION_NSIDE,
        "fast_radius_deg": FAST_RADIUS_DEG,
        "shards": shards,
    }
    tmp = out / f"pieces.json.s{shard:03d}.partial"
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    tmp.replace(out / "pieces.json")
