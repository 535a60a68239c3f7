"""Per-detector lookup in the nightly pieces: who is in this footprint at this time, and where.

Only the regions (in every shard) whose HEALPix pixels overlap the footprint's circle, padded
by the largest motion in a visit and by the widest sweep a regional piece can have
(``fast_radius_deg`` of ``pieces.json``), are read, plus the fast pieces: from a precompute's
directory (`lookup`) as row ranges of the shard's memory-mapped piece file given by its index,
from a detector's pre-cached datasets (`lookup_pieces`) as the per-region datasets themselves.
Of their rows, the pieces of the exposure's time whose sweep circle meets the padded footprint
are evaluated: position, rate and the catalogue's positional uncertainty. The ``mpc_orbits``
records of the few objects found come from the shard's orbit records (by id) or the night's
orbit datasets of the same regions.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.table import Table

from shutterline.solarsystem import chebyshev, mpcorbits, piecefiles

__all__ = ["datasets_for", "lookup", "lookup_pieces"]

FloatArray = npt.NDArray[np.float64]
#: Slack at a piece's ends (fraction of its span, 0.07 s of 2 h): RUN names round the start to
#: 1e-6 day, so a plan may pick a piece for a time a hair outside it.
_EDGE = 1e-5
#: The object's ``mpc_orbits`` record, from the night's orbit files (``o*.npz``).
_ORBIT_COLUMNS = tuple(name for name, _ in mpcorbits.COLUMNS if name != "id")
#: What marks an orbit file among a detector's files (`precompute.orbit_time`).
_ORBIT_TIME = "night_start_mjd"
#: The lookup's table when nothing is found.
_EMPTY = Table(
    names=("id", "ra", "dec", "ra_err", "dec_err", "rate_ra", "rate_dec", "delta"),
    dtype=("i4", "f8", "f8", "f8", "f8", "f8", "f8", "f4"),
)
#: What the lookup reads of a piece file's rows (not their ``piece`` index).
_PIECE_COLUMNS = ("id", "c0", "coef", "ra", "dec", "radius", "delta", "sigma")


@functools.cache
def _meta(root: Path) -> dict[str, float]:
    path = root / "pieces.json"
    if not path.exists():
        raise FileNotFoundError(f"{root}: no pieces.json, not a precomputed pieces directory")
    meta: dict[str, float] = json.loads(path.read_text())
    return meta


def datasets_for(
    root: Path, center_radec: tuple[float, float], radius_deg: float, piece: int
) -> list[str]:
    """The per-region datasets (`piecefiles.split` names) of night piece ``piece`` that a
    footprint circle (padded for motion) needs: what a detector's pre-cache fetches.

    The regions' piece datasets, the orbit datasets of the healpix6 pixels within the same
    reach, and the fast ones, of every shard.
    """
    meta = _meta(root)
    orbit_pixels = _pixels(
        {**meta, "region_nside": piecefiles.ORBIT_NSIDE}, center_radec, radius_deg
    )
    stems = [
        *(f"r{r:04d}.p{piece:03d}" for r in _pixels(meta, center_radec, radius_deg)),
        f"fast.p{piece:03d}",
        *(f"o{p:05d}" for p in orbit_pixels),
        "ofast",
    ]
    return [f"{s}.{tag}.npz" for s in stems for tag in piecefiles.shard_tags(int(meta["shards"]))]


def _pixels(meta: dict[str, float], center_radec: tuple[float, float], radius: float) -> list[int]:
    """The regions within ``radius`` plus the widest regional sweep of the centre."""
    reach = radius + float(meta["fast_radius_deg"])
    return piecefiles.cone_pixels(int(meta["region_nside"]), center_radec, reach)


@functools.cache
def _index(path: Path, mtime_ns: int) -> dict[str, npt.NDArray[Any]]:
    """A shard's index (small), read once per process and version of the file."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _shard_parts(
    root: Path, tag: str, piece: int, pixels: list[int]
) -> tuple[list[dict[str, Any]], dict[str, npt.NDArray[Any]], npt.NDArray[np.void]]:
    """One shard's rows of ``piece`` in ``pixels`` and the fast ones (memory-mapped slices),
    its index, and its orbit records (memory-mapped).

    Raises
    ------
    FileNotFoundError
        If the shard has no index: not precomputed, or not finished.
    """
    path = piecefiles.index_path(root, tag)
    if not path.exists():
        raise FileNotFoundError(f"{path}: shard {tag} missing or unfinished")
    index = _index(path, path.stat().st_mtime_ns)
    bounds = index["offsets"][piece]
    rows = np.load(piecefiles.pieces_path(root, piece, tag), mmap_mode="r")
    span = float(index["piece_span_days"])
    times = piecefiles.piece_time(float(index["piece_start_mjd"]) + piece * span, span)
    parts = [
        {"pieces": rows[bounds[slot] : bounds[slot + 1]], **times}
        for slot in (0, *(p + 1 for p in pixels))
        if bounds[slot + 1] > bounds[slot]
    ]
    return parts, index, np.load(piecefiles.orbits_path(root, tag), mmap_mode="r")


def _unit(ra: FloatArray, dec: FloatArray) -> FloatArray:
    ra_r, dec_r = np.deg2rad(ra), np.deg2rad(dec)
    return np.stack([np.cos(dec_r) * np.cos(ra_r), np.cos(dec_r) * np.sin(ra_r), np.sin(dec_r)], -1)


def _rows(parts: list[dict[str, npt.NDArray[np.generic]]]) -> tuple[dict[str, Any], float, float]:
    """Rows of one piece's files concatenated, with the piece's start (MJD) and span (days).

    Raises
    ------
    ValueError
        If the files belong to different pieces of the night.
    """
    times = {(float(p["piece_start_mjd"]), float(p["piece_span_days"])) for p in parts}
    if len(times) != 1:
        raise ValueError(f"pieces of {len(times)} different times given to one lookup: {times}")
    start, span = times.pop()
    columns = [k for k in parts[0] if np.ndim(parts[0][k]) > 0]
    return {k: np.concatenate([p[k] for p in parts]) for k in columns}, start, span


def lookup(
    root: Path,
    center_radec: tuple[float, float],
    radius_deg: float,
    mjd: float,
    max_motion_deg: float = 0.0,
) -> Table:
    """Known objects within ``radius_deg + max_motion_deg`` of the centre at ``mjd`` (TAI).

    Parameters
    ----------
    root : Path
        A directory written by `precompute.run` (all shards).
    center_radec, radius_deg
        The footprint's circle (ICRS degrees), e.g. from `predict.footprint_circle`.
    mjd : float
        Exposure midpoint, MJD (TAI); must lie inside the precomputed night.
    max_motion_deg : float
        The largest motion expected in a visit; widens the circle so objects that move into
        the footprint during the exposure (or whose prediction is off) are returned.

    Returns
    -------
    astropy.table.Table
        As `lookup_pieces`.

    Raises
    ------
    ValueError
        If ``mjd`` is outside the night the pieces cover.
    """
    meta = _meta(root)
    piece = int(np.floor((mjd - float(meta["mjd_start"])) / float(meta["span_days"])))
    if not 0 <= piece < int(meta["n_pieces"]):
        raise ValueError(f"MJD {mjd} is outside the precomputed night {meta['mjd_start']}+")
    pixels = _pixels(meta, center_radec, radius_deg + max_motion_deg)
    shards = [
        _shard_parts(root, tag, piece, pixels) for tag in piecefiles.shard_tags(int(meta["shards"]))
    ]
    found = _found(
        [p for parts, _, _ in shards for p in parts], center_radec, radius_deg, mjd, max_motion_deg
    )
    if found is None:
        return _EMPTY.copy()
    orbits: list[Mapping[str, npt.NDArray[np.generic]]] = []
    for _, index, records in shards:  # the found objects' records, by the sorted ids
        ids = index["orbit_ids"]
        at = np.searchsorted(ids, found["id"]).clip(0, max(len(ids) - 1, 0))
        hit = at[ids[at] == found["id"]] if len(ids) else at[:0]
        orbits.append(
            {"orbits": np.asarray(records[index["orbit_rows"][hit]]), _ORBIT_TIME: np.array(0.0)}
        )
    found.update(_orbit_rows(found["id"], orbits))
    return Table(found, copy=False)


def lookup_pieces(
    parts: Sequence[Mapping[str, npt.NDArray[np.generic]]],
    center_radec: tuple[float, float],
    radius_deg: float,
    mjd: float,
    max_motion_deg: float = 0.0,
) -> Table:
    """`lookup` over piece and orbit files already in memory (a detector's pre-cached datasets).

    Returns
    -------
    astropy.table.Table
        ``id`` (int32), ``ra``, ``dec`` (deg), ``ra_err``, ``dec_err`` (deg, 1 sigma per
        axis), ``rate_ra`` (deg/day, with cos dec), ``rate_dec`` (deg/day), ``delta`` (au),
        then the object's ``mpc_orbits`` columns from the orbit files; sorted by id. Empty
        without parts.

    Raises
    ------
    ValueError
        If ``mjd`` is outside the parts' piece, they hold different pieces, or an object found
        has no orbit row among them.
    """
    pieces = [p for p in parts if _ORBIT_TIME not in p]
    found = _found(pieces, center_radec, radius_deg, mjd, max_motion_deg)
    if found is None:
        return _EMPTY.copy()
    found.update(_orbit_rows(found["id"], [p for p in parts if _ORBIT_TIME in p]))
    return Table(found, copy=False)  # at once: adding 30 columns one by one costs more


def _found(
    pieces: Sequence[Mapping[str, npt.NDArray[np.generic]]],
    center_radec: tuple[float, float],
    radius_deg: float,
    mjd: float,
    max_motion_deg: float,
) -> dict[str, npt.NDArray[Any]] | None:
    """The objects of ``pieces`` within reach at ``mjd``, evaluated; None if there are none.

    Raises
    ------
    ValueError
        If ``mjd`` is outside the pieces' piece, or they hold different pieces.
    """
    if not pieces:
        return None
    reach = radius_deg + max_motion_deg
    centre = _unit(np.array([center_radec[0]]), np.array([center_radec[1]]))[0]
    rows, start, span = _rows([_near(p, centre, reach) for p in pieces])
    offset = (mjd - start) / span
    if not -_EDGE <= offset <= 1.0 + _EDGE:
        raise ValueError(f"MJD {mjd} is outside the piece [{start}, {start + span}] given")
    found = _evaluate(rows, 2.0 * offset - 1.0, span, centre, reach)
    return found if len(found["id"]) else None


def _near(
    part: Mapping[str, npt.NDArray[np.generic]], centre: FloatArray, reach: float
) -> dict[str, npt.NDArray[np.generic]]:
    """The rows of one piece file whose sweep circle can meet the padded footprint.

    Filtered file by file, before anything is concatenated: a detector's files hold
    thousands of rows and it keeps tens.
    """
    records = np.asarray(part["pieces"])
    ra, dec = (np.asarray(records[k], np.float64) for k in ("ra", "dec"))
    sweep = np.asarray(records["radius"], np.float64)
    near = records[_unit(ra, dec) @ centre >= np.cos(np.deg2rad(np.minimum(reach + sweep, 180)))]
    rows = {k: np.ascontiguousarray(near[k]) for k in _PIECE_COLUMNS}
    times = {k: part[k] for k in ("piece_start_mjd", "piece_span_days")}
    return {**rows, **times}


def _orbit_rows(
    ids: npt.NDArray[Any], orbits: list[Mapping[str, npt.NDArray[np.generic]]]
) -> dict[str, npt.NDArray[Any]]:
    """The ``mpc_orbits`` columns of objects ``ids`` (sorted), from the night's orbit files.

    Raises
    ------
    ValueError
        If an object found is in none of the orbit files.
    """
    kept: list[npt.NDArray[np.void]] = []
    have = np.zeros(0, ids.dtype)
    for part in orbits:
        records = np.asarray(part["orbits"])
        take = np.isin(records["id"], ids) & ~np.isin(records["id"], have)
        if np.any(take):  # an object crossing a region border is in both regions' files
            kept.append(records[take])
            have = np.concatenate([have, records["id"][take]])
    missing = np.setdiff1d(ids, have)
    if len(missing):
        raise ValueError(f"no mpc_orbits row among the orbit files for objects {missing[:10]}")
    rows = np.concatenate(kept)[np.argsort(have)[np.searchsorted(np.sort(have), ids)]]
    return {name: np.ascontiguousarray(rows[name]) for name in _ORBIT_COLUMNS}


def _evaluate(
    rows: dict[str, npt.NDArray[np.generic]],
    x: float,
    span: float,
    centre: FloatArray,
    reach: float,
) -> dict[str, npt.NDArray[Any]]:
    """Positions and rates of the candidate pieces at ``x`` in [-1, 1]; those within reach."""
    coef = np.concatenate([rows["c0"][:, :, None], rows["coef"].astype(np.float64)], axis=2)
    vec, dvec = chebyshev.evaluate(coef, np.full(len(coef), x))
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    vec, dvec = vec / norm, dvec / norm * (2.0 / span)  # d(unit)/dt, per day
    keep = vec @ centre >= np.cos(np.deg2rad(reach))
    vec, dvec = vec[keep], dvec[keep]
    ra = np.arctan2(vec[:, 1], vec[:, 0])
    dec = np.arcsin(np.clip(vec[:, 2], -1.0, 1.0))
    east = np.stack([-np.sin(ra), np.cos(ra), np.zeros(len(ra))], 1)
    north = np.stack([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)], 1)
    sigma = rows["sigma"][keep].astype(np.float64) / 3600.0
    order = np.argsort(rows["id"][keep], kind="stable")
    out: dict[str, npt.NDArray[Any]] = {}
    out["id"] = rows["id"][keep][order]
    out["ra"] = (np.rad2deg(ra) % 360.0)[order]
    out["dec"] = np.rad2deg(dec)[order]
    out["ra_err"] = sigma[order]
    out["dec_err"] = out["ra_err"].copy()
    out["rate_ra"] = np.rad2deg(np.sum(dvec * east, 1))[order]
    out["rate_dec"] = np.rad2deg(np.sum(dvec * north, 1))[order]
    out["delta"] = rows["delta"][keep][order]
    return out
