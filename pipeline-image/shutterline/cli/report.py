"""``shutterline report --night YYYY-MM-DD --repo ... --out report.html``: the night report."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

__all__ = ["register", "write_night_report"]


def register(subparsers: Any) -> None:
    """Add ``report`` to the command line."""
    p = subparsers.add_parser(
        "report",
        help="write the HTML report of one observing night from the repository's QA records",
        description="Read every qaVisit record of the night (and its detectors' qa records) "
        "from the repository and write one self-contained HTML page: image quality, zero "
        "point, limiting magnitude and DIA counts over the night, the latency distribution "
        "against the 60 s requirement and per-detector focal-plane maps.",
    )
    p.add_argument("--night", required=True, type=_night, help="observing night, YYYY-MM-DD")
    p.add_argument("--repo", required=True, help="repository URI (directory or s3://...)")
    p.add_argument("--out", type=Path, default=Path("report.html"), help="the HTML file")
    p.set_defaults(func=_run)


def _night(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def write_night_report(repo_uri: str, night: str, out: Path) -> int:
    """Write the report of ``night`` from ``repo_uri`` to ``out``; the number of visits.

    Raises
    ------
    shutterline.exceptions.PermanentError
        The repository holds no QA record of that night.
    """
    from shutterline import exceptions
    from shutterline.analysis import report
    from shutterline.butler import repo
    from shutterline.pipeline import qaproducts

    butler = repo.open_repo(repo_uri)
    records = qaproducts.query_visit_records(butler, night)
    if not records:
        raise exceptions.PermanentError(f"no QA records of night {night} in {repo_uri}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.tmp")
    partial.write_text(report.night_report(night, records, repo_uri), encoding="utf-8")
    partial.replace(out)  # never a half-written report under the real name
    return len(records)


def _run(args: argparse.Namespace) -> int:
    n = write_night_report(args.repo, args.night, args.out)
    print(f"night {args.night}: {n} visits; report written to {args.out}")
    return 0
