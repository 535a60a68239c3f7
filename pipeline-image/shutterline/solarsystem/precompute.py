"""The nightly precompute: every catalogue object's topocentric track as Chebyshev pieces.

For each object and each piece of the night (``span`` days, default 2 hours) the light-time
corrected astrometric direction from the observatory (CTIO) is sampled at the Chebyshev
nodes and fitted, per Cartesian component of the unit vector (no RA wrap, no pole). The
observer is the Earth from JPL DE421 (the ``de421`` package's arrays read by jplephem) plus
the site's geocentric vector from skyfield (WGS84, the Earth's rotation from skyfield's
built-in time scale), once per node time; the object is the two-body orbit of
`shutterline.solarsystem.orbits`, propagated for a whole chunk of objects per node.

Pieces are indexed by the HEALPix region (nested, ``REGION_NSIDE``) of their centre and
stored per region, piece of the night and shard by `shutterline.solarsystem.piecefiles`
(which gives the layout); pieces that sweep more than ``FAST_RADIUS_DEG`` (close NEOs) go
to the fast file, read by every lookup. ``pieces.json`` records the night and the layout.
The same rows always give the same bytes, whatever the number of worker processes: chunks
are fixed, and a file is written from every chunk's rows of its region, sorted by id.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
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


_WORKER: dict[str, Any] = {}
#: Write tasks per worker process: ranges of regions of about equal rows, so that no
#: process is left writing alone at the end.
_RANGES_PER_JOB = 4
_FIELDS = piecefiles.Chunk._fields


def _init_worker(catalog_path: str, night: Night, observer: FloatArray) -> None:
    """A worker's state: the catalogue (read by each worker while the others start).

    Each worker is made a session of its own: with the kernel's autogroup scheduling (on
    for desktop and test machines, not used inside a pod's cgroup) the processes of one
    session share one session's CPU share, so a pool in one session would get no more CPU
    than one process while other sessions are busy. A pod's shard is unaffected.
    """
    with contextlib.suppress(PermissionError):  # already a group leader: keep its session
        os.setsid()
    catalog = mpcorbits.read_catalog(Path(catalog_path))
    _WORKER.update(catalog=catalog, night=night, obs=observer, ready=time.time())


def _compute_chunk(
    rows: slice, spool: str | None
) -> tuple[piecefiles.Chunk | str, npt.NDArray[np.int64], float, tuple[int, float]]:
    """One chunk's pieces sorted by region, their count per region, when this worker was
    ready, and its CPU so far (`_cpu`). With a spool directory (worker processes) the chunk
    goes there as ``.npy`` files, read back memory-mapped by whichever worker writes a
    region, and its path is returned instead of the arrays: nothing large goes through a
    pipe."""
    catalog, night = _WORKER["catalog"], _WORKER["night"]
    pieces = piece_arrays(catalog, rows, night, _WORKER["obs"])
    region = _regions(pieces)
    row = np.repeat(np.arange(rows.start, rows.stop, dtype=np.int64), night.n_pieces)
    chunk = piecefiles.sort_chunk(pieces, region, row)
    counts = np.bincount(region + 1, minlength=12 * REGION_NSIDE**2 + 1)
    if spool is None:
        return chunk, counts, float(_WORKER["ready"]), _cpu()
    stem = f"{spool}/c{rows.start:010d}"
    for name, values in zip(_FIELDS, chunk, strict=True):
        np.save(f"{stem}.{name}.npy", values)
    return stem, counts, float(_WORKER["ready"]), _cpu()


def _cpu() -> tuple[int, float]:
    """This process's id and CPU seconds: forked workers are not this process's children,
    so their CPU is summed from what they report."""
    return os.getpid(), time.process_time()


def _write_range(
    out: str, chunks: list[piecefiles.Chunk | str], regions: tuple[int, int], tag: str
) -> tuple[int, tuple[int, float]]:
    """The files of regions ``[lo, hi)``, from every chunk (spooled ones memory-mapped),
    and this worker's CPU so far."""
    loaded = [
        c
        if isinstance(c, piecefiles.Chunk)
        else piecefiles.Chunk(*(np.load(f"{c}.{n}.npy", mmap_mode="r") for n in _FIELDS))
        for c in chunks
    ]
    night = _WORKER["night"]
    times = (night.mjd_start, night.span_days, night.n_pieces)
    files = piecefiles.write_regions(Path(out), loaded, regions, _WORKER["catalog"], times, tag)
    return files, _cpu()


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

    Two passes over the chunks, both spread over the ``jobs`` processes: compute every
    chunk's pieces, then write the files of ranges of regions, so that the writing (a third
    of one process's time, thousands of files) is not left to one process. ``timings``,
    if given, receives the seconds of each step: ``read`` (catalogue size and the site's
    positions), ``workers_ready`` (from the pool's start until the last worker has read the
    catalogue), ``compute``, ``write`` and ``meta`` (``pieces.json``), and with worker
    processes ``workers_cpu``, their CPU seconds (not the pool server's one import).

    Raises
    ------
    ValueError
        If the catalogue file is not one, or the shard index is out of range.
    """
    clock = _Clock(timings)
    chunks = shard_rows(mpcorbits.count_rows(catalog_path), shard, shards)
    tag = f"s{shard:03d}of{shards:03d}"
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    if chunks:  # more shards than chunks: this one has nothing to do
        observer = observer_positions(night.node_times().ravel())
        clock("read")
        pool_start = time.time()
        with _pool(catalog_path, out / f".spool.{tag}", night, observer, jobs) as (map_, spool):
            results = []
            for done, result in enumerate(map_(_compute_chunk, chunks, [spool] * len(chunks))):
                results.append(result)
                _LOG.info("shard %s: chunk %d/%d computed", tag, done + 1, len(chunks))
            clock("compute")
            clock.timings_of("workers_ready", max(r[2] for r in results) - pool_start)
            counts = np.sum([r[1] for r in results], axis=0)
            ranges = piecefiles.balanced_ranges(counts, _RANGES_PER_JOB * jobs)
            parts = [r[0] for r in results]
            args = ([str(out)] * len(ranges), [parts] * len(ranges), ranges, [tag] * len(ranges))
            written = list(map_(_write_range, *args))
            clock("write")
        files = sum(w[0] for w in written)
        if jobs > 1:
            cpu: dict[int, float] = {}
            for pid, seconds in [r[3] for r in results] + [w[1] for w in written]:
                cpu[pid] = max(cpu.get(pid, 0.0), seconds)
            clock.timings_of("workers_cpu", sum(cpu.values()))
        total = int(counts.sum())
        _LOG.info("shard %s: %d pieces in %d files", tag, total, files)
    _write_meta(out, night, shard, shards)
    clock("meta")
    return total


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


@contextlib.contextmanager
def _pool(
    catalog_path: Path, spool: Path, night: Night, observer: FloatArray, jobs: int
) -> Iterator[tuple[Callable[..., Iterator[Any]], str | None]]:
    """``map`` over tasks and the spool directory for chunks (None in this process).

    One job runs in this process: a pod's shard pays no second start-up of numpy, skyfield
    and the catalogue (about 2 CPU seconds). More are forked from a server process that
    imports this module once; each reads the catalogue itself, this process never does.
    """
    if jobs == 1:
        catalog = mpcorbits.read_catalog(catalog_path)
        _WORKER.update(catalog=catalog, night=night, obs=observer, ready=time.time())
        try:
            yield map, None
        finally:
            _WORKER.clear()
        return
    # Workers forked from a fresh server that has imported this module once (no state of
    # this process, no thread of it), instead of each importing numpy, astropy and skyfield.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    spool.mkdir(parents=True, exist_ok=True)
    try:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=context,
            initializer=_init_worker,
            initargs=(str(catalog_path), night, observer),
        ) as pool:
            yield pool.map, str(spool)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


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
