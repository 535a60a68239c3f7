"""``shutterline templates build``: template coadds per sky-map patch and band."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``templates`` subcommand."""
    from shutterline.cli import calibs

    p = subparsers.add_parser(
        "templates",
        help="build template coadds",
        description="Build template coadds from earlier science visits.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="coadd earlier science visits per patch and band",
        description="For each selected science exposure and detector: instrument signature "
        "removal with the certified calibrations, background subtraction, PSF, astrometric "
        "and photometric calibration, warping onto the sky-map patches; then per patch and "
        "band an inverse-variance weighted coadd in nJy with outlier rejection, a variance "
        "plane, a mask and a PSF, stored as template_coadd in templates/coadd. By default "
        "every science exposure of an earlier observing day than the latest one is used.",
    )
    build.add_argument("--repo", required=True, metavar="URI", help="repository root")
    build.add_argument(
        "--exposures", type=int, nargs="+", metavar="EXP", help="science exposure ids to coadd"
    )
    build.add_argument(
        "--before",
        type=calibs.parse_mjd,
        metavar="MJD_OR_DATE",
        help="use every science exposure that started before this time",
    )
    build.add_argument(
        "--band", dest="bands", nargs="+", metavar="BAND", help="only these bands (default: all)"
    )
    build.add_argument(
        "--detectors",
        type=int,
        nargs="+",
        metavar="CCD",
        help="only these detectors (default: all)",
    )
    build.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    build.add_argument(
        "--replace",
        action="store_true",
        help="rebuild patches that already have a template (default: refuse)",
    )
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from shutterline.butler import repo
    from shutterline.templates import build

    butler = repo.open_repo(args.repo, writeable=True)
    result = build.build_templates(
        butler,
        exposures=args.exposures,
        before_mjd=args.before,
        bands=args.bands,
        detectors=args.detectors,
        jobs=args.jobs,
        repo_uri=args.repo,
        progress=not args.no_progress,
        replace=args.replace,
    )
    n_inputs = sum(len(v) for v in result.inputs.values())
    print(
        f"stored {len(result.templates)} template patches ({n_inputs} visit-patch inputs) "
        f"in {args.repo}; {len(result.skipped)} detector inputs skipped"
    )
    for exposure, detector, reason in result.skipped:
        print(f"  skipped exposure {exposure} detector {detector}: {reason}")
    return 0
