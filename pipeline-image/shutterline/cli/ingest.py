"""``shutterline ingest raws|refcat|orbits`` and ``shutterline repo create``."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``ingest`` and ``repo`` subcommands."""
    _register_ingest(subparsers)
    _register_repo(subparsers)


def _register_ingest(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="ingest raws, a reference catalog or asteroid orbits into a repository",
        description="Register data in a Shutterline repository (a directory or s3:// URI).",
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    raws = kinds.add_parser(
        "raws",
        help="raw FITS files (directories are searched recursively)",
        description="Register exposures and visits from raw headers, then store the raws. "
        "A file with a missing or malformed keyword is rejected, naming file and keyword.",
    )
    raws.add_argument("paths", nargs="+", metavar="DIR_OR_FILE")
    raws.add_argument(
        "--transfer",
        default="copy",
        choices=["copy", "move", "symlink", "hardlink", "direct"],
        help="how files enter the datastore (default: copy)",
    )
    raws.add_argument(
        "--skip-malformed",
        action="store_true",
        help="log and skip malformed files instead of stopping",
    )
    refcat = kinds.add_parser(
        "refcat",
        help="reference catalog FITS tables, sharded by htm7",
        description="Shard reference catalogs (id, ra, dec, <band>_flux, <band>_fluxErr) "
        "by htm7 trixel into ref_cat in refcats/sim.",
    )
    refcat.add_argument("paths", nargs="+", metavar="FILE")
    orbits = kinds.add_parser(
        "orbits",
        help="asteroid orbital elements (CSV or FITS table)",
        description="Store the orbital elements table as ss_orbits in solarsystem/orbits.",
    )
    orbits.add_argument("path", metavar="FILE")
    for sub in (raws, refcat, orbits):
        sub.add_argument("--repo", required=True, metavar="URI", help="repository root")
        sub.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_ingest)


def _register_repo(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "repo",
        help="create a repository",
        description="Create a Shutterline repository with the instrument, sky map and "
        "dataset types registered.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="create a new repository",
        description="Create a repository at URI (directory or s3://).",
    )
    create.add_argument("uri", metavar="URI")
    create.add_argument(
        "--registry",
        metavar="URL",
        default=None,
        help="registry database URL (default: SQLite in the repository; required for s3:// roots)",
    )
    p.set_defaults(func=_run_repo)


def _run_ingest(args: argparse.Namespace) -> int:
    from shutterline.butler import ingest, repo

    butler = repo.open_repo(args.repo, writeable=True)
    progress = not args.no_progress
    if args.kind == "raws":
        refs = ingest.ingest_raws(
            butler,
            args.paths,
            progress=progress,
            transfer=args.transfer,
            skip_malformed=args.skip_malformed,
        )
        print(f"ingested {len(refs)} raws into {args.repo}")
    elif args.kind == "refcat":
        n = ingest.ingest_refcat(butler, args.paths, progress=progress)
        print(f"wrote {n} reference-catalog shards into {args.repo}")
    else:
        ingest.ingest_orbits(butler, args.path)
        print(f"stored orbits from {args.path} into {args.repo}")
    return 0


def _run_repo(args: argparse.Namespace) -> int:
    from shutterline.butler import repo

    repo.create_repo(args.uri, registry_url=args.registry)
    print(f"created repository {args.uri}")
    return 0
