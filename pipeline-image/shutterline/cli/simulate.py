"""``shutterline simulate``: write a simulated night (raws, truth, refcat, orbits, schedule)."""

from __future__ import annotations

import argparse
import re
from typing import Any

__all__ = ["register"]


def _shape(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"shape must look like 2048x4096, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate a night of raw exposures with truth tables",
        description="Write a self-consistent simulated night (layout: docs/architecture.md).",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=1, help="random seed (same seed, same bytes)")
    p.add_argument("--visits", type=int, default=4, help="science visits per field tonight")
    p.add_argument("--detectors", type=int, default=2, help="number of central detectors")
    p.add_argument("--fields", type=int, default=3, help="number of fields")
    p.add_argument(
        "--band",
        dest="bands",
        nargs="+",
        default=["r"],
        choices=["g", "r", "i"],
        help="bands; the night's visits cycle through them",
    )
    p.add_argument(
        "--template-visits",
        type=int,
        default=3,
        help="earlier visits per field and band, for templates",
    )
    p.add_argument(
        "--shape",
        type=_shape,
        default=(2048, 4096),
        metavar="NXxNY",
        help="science pixels per detector (default 2048x4096)",
    )
    p.add_argument("--jobs", type=int, default=1, help="worker processes (output is the same)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from shutterline.simulate import config, night

    try:
        cfg = config.SimConfig(
            seed=args.seed,
            visits=args.visits,
            detectors=args.detectors,
            fields=args.fields,
            bands=tuple(args.bands),
            template_visits=args.template_visits,
            nx=args.shape[0],
            ny=args.shape[1],
        )
    except ValueError as exc:
        raise SystemExit(f"shutterline simulate: error: {exc}") from exc
    summary = night.simulate_night(args.out, cfg, jobs=args.jobs, progress=True)
    print(
        f"wrote {summary.n_raw_files} raws ({len(summary.bias)} bias, "
        f"{sum(len(v) for v in summary.flat.values())} flat, {len(summary.template)} template, "
        f"{len(summary.science)} science exposures x {len(summary.ccdnums)} detectors), "
        f"{summary.n_truth_rows} truth rows, {summary.n_refcat} refcat stars, "
        f"{summary.n_asteroids} asteroids to {summary.out} in {summary.elapsed_s:.1f} s"
    )
    return 0
