"""``shutterline precache``: copy one detector's inputs into a new local repository."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``precache`` subcommand."""
    p = subparsers.add_parser(
        "precache",
        help="copy exactly what one detector needs into a local repository",
        description="Transfer a detector's raw, the bias and flat valid at the observation "
        "time, the overlapping template patches and reference shards, and the orbits from the "
        "central repository into a new local repository, verifying checksums.",
    )
    p.add_argument("--repo", required=True, metavar="URI", help="central repository")
    p.add_argument("--visit", required=True, type=int)
    p.add_argument("--detector", required=True, type=int)
    p.add_argument("--out", required=True, metavar="DIR", help="new local repository")
    p.add_argument(
        "--padding",
        type=float,
        default=60.0,
        metavar="ARCSEC",
        help="footprint padding for templates and reference shards (default 60)",
    )
    p.add_argument("--threads", type=int, default=8, help="parallel transfers")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from shutterline.butler import precache

    with tqdm(total=1, desc=f"pre-cache visit {args.visit} detector {args.detector}") as bar:
        report = precache.precache_detector(
            args.repo,
            args.out,
            args.visit,
            args.detector,
            padding_arcsec=args.padding,
            threads=args.threads,
        )
        bar.update(1)
    print(
        f"pre-cached {report.n_datasets} datasets ({report.bytes / 1e6:.1f} MB) into "
        f"{report.local_root}: queries {report.query_seconds:.2f} s, transfer "
        f"{report.transfer_seconds:.2f} s ({report.transfer_mb_per_s:.0f} MB/s), verify "
        f"{report.verify_seconds:.2f} s"
    )
    return 0
