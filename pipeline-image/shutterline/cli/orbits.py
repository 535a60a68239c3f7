"""``shutterline orbits synthesize|precompute``: the known-object catalogue and its night."""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]

_LOG = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add the ``orbits`` subcommand."""
    from shutterline.cli import calibs

    p = subparsers.add_parser(
        "orbits",
        help="known-object orbit catalogue and nightly ephemeris pieces",
        description="Synthesize an MPC-sized orbit catalogue; precompute a night's "
        "topocentric Chebyshev pieces from it.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    syn = actions.add_parser(
        "synthesize",
        help="write a synthetic orbit catalogue (mpc_orbits columns, .npz)",
        description="Main belt, NEOs, Hildas, Jupiter Trojans and comets in the MPC's "
        "proportions and element distributions, seeded; optionally with a simulated night's "
        "asteroids (solarsystem/orbits.csv) among them.",
    )
    syn.add_argument("--out", type=Path, required=True, metavar="FILE", help="catalogue .npz")
    syn.add_argument("--n", type=int, default=1_500_000, help="objects (default 1.5 million)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--epoch", type=calibs.parse_mjd, default=61200.0, metavar="MJD_OR_DATE")
    syn.add_argument("--night", type=Path, metavar="DIR", help="simulated night to merge")
    syn.set_defaults(func=_synthesize)
    pre = actions.add_parser(
        "precompute",
        help="a night's topocentric Chebyshev pieces per HEALPix region",
        description="For every catalogue object (or this shard's share), its light-time "
        "corrected position from CTIO as Chebyshev pieces over the night, written per "
        "HEALPix region and shard. Shards let an Indexed Job split the catalogue: run shard "
        "i of n with --shard $JOB_COMPLETION_INDEX --shards n into one directory.",
    )
    pre.add_argument(
        "--catalog", required=True, metavar="FILE_OR_URI", help="catalogue .npz (path or s3://)"
    )
    pre.add_argument("--out", type=Path, required=True, metavar="DIR")
    pre.add_argument(
        "--start",
        type=_parse_start,
        required=True,
        metavar="MJD_OR_DATE",
        help="start of the night: an MJD, an ISO date (UTC), or 'next HH:MM', the first such "
        "UTC time after now (what a nightly CronJob's shards all agree on)",
    )
    pre.add_argument("--hours", type=float, default=12.0, help="length of the night")
    pre.add_argument("--piece-hours", type=float, default=2.0)
    pre.add_argument("--jobs", type=int, default=1, help="worker processes")
    pre.add_argument("--shard", type=int, default=0)
    pre.add_argument("--shards", type=int, default=1)
    pre.add_argument(
        "--repo",
        metavar="URI",
        help="also store this shard's pieces in this repository (directory or s3://) as "
        "ss_pieces / ss_fast_pieces datasets, for the pre-cache",
    )
    pre.set_defaults(func=_precompute)


def _parse_start(text: str) -> float:
    """``--start``: as `calibs.parse_mjd`, or ``next HH:MM`` (UTC) from now."""
    from shutterline.cli import calibs

    if not text.startswith("next "):
        return calibs.parse_mjd(text)
    import datetime

    try:
        hour, minute = (int(v) for v in text.removeprefix("next ").split(":"))
        now = datetime.datetime.now(datetime.UTC)
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not 'next HH:MM': {text!r}") from exc
    if at <= now:
        at += datetime.timedelta(days=1)
    return calibs.parse_mjd(at.strftime("%Y-%m-%dT%H:%M:%S"))


def _local_catalog(uri: str, directory: Path) -> Path:
    """The catalogue as a local file: a path as it is, a URI copied into ``directory``."""
    from lsst.resources import ResourcePath

    source = ResourcePath(uri, forceDirectory=False)
    if source.isLocal:
        return Path(source.ospath)
    directory.mkdir(parents=True, exist_ok=True)
    target = ResourcePath(str(directory / "catalog.npz"), forceDirectory=False)
    target.transfer_from(source, transfer="copy", overwrite=True)
    return Path(target.ospath)


def _synthesize(args: argparse.Namespace) -> int:
    from astropy.table import Table

    from shutterline.simulate import orbitcatalog
    from shutterline.solarsystem import mpcorbits

    start = time.perf_counter()
    catalog = orbitcatalog.synthesize(args.n, args.seed, args.epoch)
    if args.night is not None:
        path = args.night / "solarsystem" / "orbits.csv"
        if not path.exists():
            raise SystemExit(f"shutterline orbits: no {path}")
        catalog = orbitcatalog.merge_night(catalog, Table.read(path, format="ascii.csv"))
    mpcorbits.write_catalog(args.out, catalog)
    _LOG.info("wrote %d orbits to %s in %.1f s", args.n, args.out, time.perf_counter() - start)
    return 0


def _precompute(args: argparse.Namespace) -> int:
    from shutterline.solarsystem import precompute

    if args.jobs < 1 or args.hours <= 0 or args.piece_hours <= 0:
        raise SystemExit("shutterline orbits: --jobs, --hours and --piece-hours must be > 0")
    night = precompute.Night(
        args.start, math.ceil(args.hours / args.piece_hours), args.piece_hours / 24.0
    )
    start = time.perf_counter()
    catalog = _local_catalog(args.catalog, args.out.parent / f"{args.out.name}-catalog")
    n = precompute.run(
        catalog, args.out, night, shard=args.shard, shards=args.shards, jobs=args.jobs
    )
    _LOG.info("wrote %d pieces to %s in %.1f s", n, args.out, time.perf_counter() - start)
    if args.repo is not None:
        from shutterline.butler import repo, sspieces

        sspieces.add_storage_classes(args.repo)  # a repository older than the pieces
        butler = repo.open_repo(args.repo, writeable=True)
        stored = sspieces.store_pieces(butler, args.out, args.shard, args.shards)
        _LOG.info("stored %d piece and orbit datasets in %s", stored, args.repo)
    return 0
