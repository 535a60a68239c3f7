"""The nightly precompute: every catalogue object's topocentric track as Chebyshev pieces.

For each object and each piece of the night (``span`` days, default 2 hours) the light-time
corrected astrometric direction from the observatory (CTIO) is sampled at the Chebyshev
nodes and fitted, per Cartesian component of the unit vector (no RA wrap, no pole). The
observer is the Earth from JPL DE421 (the ``de421`` package's arrays read by jplephem) plus
the site's geocentric vector from skyfield (WGS84, the Earth's rotation from skyfield's
built-in time scale), once per node time; the object is the two-body orbit of
`shutterline.solarsystem.orbits`, propagated for a whole chunk of objects per node.

Pieces are indexed by the HEALPix region (nested, ``REGION_NSIDE``) of their centre and
stored per region, piece of the night and shard,
``r{region:04d}.p{piece:03d}.s{shard:03d}of{shards:03d}.npz`` (one structured array of
rows, ``pieces``, and the piece's time); pieces that sweep more than
``FAST_RADIUS_DEG`` (close NEOs) go to ``fast.p{piece:03d}.s...npz``, read by every lookup.
The objects' ``mpc_orbits`` records (for the alerts) are stored once a night, not in every
piece: ``o{region:04d}.s...npz`` holds those of every object with a piece in the region
(``ofast.s...npz`` of the fast ones).
``pieces.json`` records the night and the layout. The same rows always give the same bytes:
chunks are processed in order whatever the number of worker processes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import logging
import multiprocessing
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
from shutterline.solarsystem import chebyshev, mpcorbits
from shutterline.solarsystem import orbits as orbits_mod

__all__ = [
    "FAST_RADIUS_DEG",
    "REGION_NSIDE",
    "Night",
    "observer_positions",
    "orbit_time",
    "piece_arrays",
    "piece_time",
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


def piece_time(start_mjd: float, span_days: float) -> dict[str, npt.NDArray[np.float64]]:
    """The 0-d arrays each piece file carries: its piece's start (MJD, TAI) and length."""
    return {
        "piece_start_mjd": np.array(start_mjd, np.float64),
        "piece_span_days": np.array(span_days, np.float64),
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


_WORKER: dict[str, object] = {}


def _init_worker(catalog_path: str, night: Night, observer: FloatArray) -> None:
    _WORKER.update(catalog=mpcorbits.read_catalog(Path(catalog_path)), night=night, obs=observer)


def _work(rows: slice) -> dict[str, npt.NDArray[np.generic]]:
    catalog = _WORKER["catalog"]
    assert isinstance(catalog, dict)
    night, obs = _WORKER["night"], _WORKER["obs"]
    assert isinstance(night, Night)
    return piece_arrays(catalog, rows, night, np.asarray(obs))


def _regions(pieces: dict[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.int64]:
    """Coarse region of every piece; -1 for the fast ones."""
    hp = HEALPix(nside=REGION_NSIDE, order="nested")
    ra = np.asarray(pieces["ra"], np.float64)
    dec = np.asarray(pieces["dec"], np.float64)
    region = np.asarray(hp.lonlat_to_healpix(ra * u.deg, dec * u.deg))
    return np.where(np.asarray(pieces["radius"]) > FAST_RADIUS_DEG, -1, region.astype(np.int64))


def run(
    catalog_path: Path,
    out: Path,
    night: Night,
    *,
    shard: int = 0,
    shards: int = 1,
    jobs: int = 1,
) -> int:
    """Precompute this shard's rows of the catalogue into ``out``; returns pieces written.

    Raises
    ------
    ValueError
        If the catalogue file is not one, or the shard index is out of range.
    """
    catalog = mpcorbits.read_catalog(catalog_path)
    chunks = shard_rows(len(catalog["id"]), shard, shards)
    if not chunks:  # more shards than chunks: this one has nothing to do
        _write_meta(out, night, shard, shards)
        return 0
    observer = observer_positions(night.node_times().ravel())
    parts: list[dict[str, npt.NDArray[np.generic]]] = []
    with _pool(catalog, catalog_path, night, observer, jobs) as map_:
        for done, part in enumerate(map_(_work, chunks), start=1):
            parts.append(part)
            _LOG.info("shard %d/%d: chunk %d/%d done", shard, shards, done, len(chunks))
    pieces = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    rows = np.concatenate([np.repeat(np.arange(c.start, c.stop), night.n_pieces) for c in chunks])
    region = _regions(pieces)
    _write_orbits(out, catalog, rows, region, night, f"s{shard:03d}of{shards:03d}")
    return _write(out, pieces, region, night, (shard, shards))


@contextlib.contextmanager
def _pool(
    catalog: mpcorbits.Catalog, catalog_path: Path, night: Night, observer: FloatArray, jobs: int
) -> Iterator[Callable[..., Iterator[dict[str, npt.NDArray[np.generic]]]]]:
    """``map`` over chunks: in this process for one job (a pod's shard pays no second start-up
    of numpy, skyfield and the catalogue, about 2 CPU seconds), else in ``jobs`` processes."""
    if jobs == 1:
        _WORKER.update(catalog=catalog, night=night, obs=observer)
        try:
            yield map
        finally:
            _WORKER.clear()
        return
    context = multiprocessing.get_context("spawn")  # no forked numpy or skyfield state
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(str(catalog_path), night, observer),
    ) as pool:
        yield pool.map


def _write(
    out: Path,
    pieces: dict[str, npt.NDArray[np.generic]],
    region: npt.NDArray[np.int64],
    night: Night,
    split: tuple[int, int],
) -> int:
    """One file per region and piece for shard ``split[0]`` of ``split[1]``, rows by id.

    The rows are one structured array, ``pieces`` (`piece_arrays`' columns as fields): a
    file of one member writes, and reads, much faster than one of a member per column, and
    a shard writes thousands of small files.
    """
    shard, shards = split
    records = _records(pieces)
    piece = np.asarray(pieces["piece"], np.int64)
    order = np.lexsort((pieces["id"], piece, region))
    key = (region * 1000 + piece)[order]  # fewer than 1000 pieces a night
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    for begin, end in zip(starts, np.r_[starts[1:], len(key)], strict=True):
        take = order[begin:end]
        where = "fast" if region[take[0]] < 0 else f"r{region[take[0]]:04d}"
        start = night.mjd_start + night.span_days * int(piece[take[0]])
        arrays: dict[str, Any] = {"pieces": records[take], **piece_time(start, night.span_days)}
        _save(out / f"{where}.p{piece[take[0]]:03d}.s{shard:03d}of{shards:03d}.npz", arrays)
    _write_meta(out, night, shard, shards)
    return len(region)


def _records(columns: dict[str, npt.NDArray[np.generic]]) -> npt.NDArray[np.void]:
    """The columns as one structured array (a column of shape ``(n, ...)`` is a subarray)."""
    dtype = np.dtype([(k, v.dtype, v.shape[1:]) for k, v in columns.items()])
    records = np.empty(len(columns["id"]), dtype=dtype)
    for name, values in columns.items():
        records[name] = values
    return records


def _write_orbits(
    out: Path,
    catalog: mpcorbits.Catalog,
    rows: npt.NDArray[np.int64],
    region: npt.NDArray[np.int64],
    night: Night,
    tag: str,
) -> None:
    """Per region, the ``mpc_orbits`` rows (by id) of every object with a piece there.

    One structured array, ``orbits`` (the catalogue's columns as fields), as the pieces.

    Once a night, not once per piece: a detector's lookup takes the rows of the few objects it
    finds from the orbit files of its regions, for the alerts' ``mpc_orbits`` records.
    """
    order = np.lexsort((rows, region))
    starts = np.flatnonzero(np.r_[True, region[order][1:] != region[order][:-1]])
    for begin, end in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        take = np.unique(rows[order[begin:end]])
        take = take[np.argsort(catalog["id"][take], kind="stable")]
        records = _records({name: catalog[name][take] for name, _ in mpcorbits.COLUMNS})
        arrays: dict[str, Any] = {"orbits": records, **orbit_time(night)}
        where = "ofast" if region[order[begin]] < 0 else f"o{region[order[begin]]:04d}"
        _save(out / f"{where}.{tag}.npz", arrays)


def orbit_time(night: Night) -> dict[str, npt.NDArray[np.float64]]:
    """The 0-d arrays each orbit file carries: its night's start (MJD, TAI) and length."""
    return {
        "night_start_mjd": np.array(night.mjd_start, np.float64),
        "night_span_days": np.array(night.n_pieces * night.span_days, np.float64),
    }


def _save(path: Path, arrays: dict[str, Any]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz``, atomically (a temporary file, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)


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
