"""``shutterline calibs build``: master bias and flats, certified for a validity range."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["parse_mjd", "register"]


def parse_mjd(text: str) -> float:
    """An MJD given as a number, or an ISO date/time (UTC) converted to MJD (TAI)."""
    try:
        return float(text)
    except ValueError:
        pass
    from astropy.time import Time

    try:
        return float(Time(text, format="isot" if "T" in text else "iso", scale="utc").tai.mjd)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an MJD or ISO date: {text!r}") from exc


def register(subparsers: Any) -> None:
    """Add the ``calibs`` subcommand."""
    p = subparsers.add_parser(
        "calibs",
        help="build master calibrations",
        description="Build master calibrations from raws in a repository.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="master bias per detector, master flat per detector and filter",
        description="Combine raw biases into a master bias per detector and raw dome flats "
        "(bias-subtracted, each normalised by its median) into a master flat per detector and "
        "filter, with outlier rejection and defect (BAD) masks, and certify them in "
        "SimDECam/calib for a validity range.",
    )
    build.add_argument("--repo", required=True, metavar="URI", help="repository root")
    build.add_argument(
        "--bias-exposures",
        type=int,
        nargs="+",
        metavar="EXP",
        help="bias exposure ids (default: every 'zero' exposure)",
    )
    build.add_argument(
        "--flat-exposures",
        type=int,
        nargs="+",
        metavar="EXP",
        help="flat exposure ids (default: every 'dome flat' exposure)",
    )
    build.add_argument(
        "--detectors",
        type=int,
        nargs="+",
        metavar="CCD",
        help="only these detectors (default: all with raws)",
    )
    build.add_argument(
        "--valid-from",
        type=parse_mjd,
        metavar="MJD_OR_DATE",
        help="start of validity (default: day of the earliest exposure)",
    )
    build.add_argument(
        "--valid-to",
        type=parse_mjd,
        metavar="MJD_OR_DATE",
        help="end of validity, exclusive (default: open-ended)",
    )
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from shutterline.butler import repo
    from shutterline.calibs import build

    butler = repo.open_repo(args.repo, writeable=True)
    result = build.build_calibs(
        butler,
        bias_exposures=args.bias_exposures,
        flat_exposures=args.flat_exposures,
        valid_from_mjd=args.valid_from,
        valid_to_mjd=args.valid_to,
        detectors=args.detectors,
        progress=not args.no_progress,
    )
    end = "open" if result.valid_to_mjd is None else f"{result.valid_to_mjd:.5f}"
    print(
        f"certified {len(result.biases)} bias and {len(result.flats)} flat calibrations "
        f"valid [{result.valid_from_mjd:.5f}, {end}) in {args.repo}"
    )
    return 0
