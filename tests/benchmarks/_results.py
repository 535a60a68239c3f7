"""Rows for the one table ``make bench`` prints: each script records its figures here and
``run_all.py`` prints them together after the last script.

A row is ``(figure, value, against, command)``: what was measured, the median, the baseline or
target beside it, and the command that reproduces it (written in ``README.md`` too).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["OUT_ENV", "out_dir", "record"]

#: Directory for the rows; ``run_all.py`` sets it, a script run alone writes to ``.bench``.
OUT_ENV = "SHUTTERLINE_BENCH_OUT"


def out_dir() -> Path:
    """Where rows go (created)."""
    path = Path(os.environ.get(OUT_ENV) or Path(__file__).resolve().parents[2] / ".bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(script: str, rows: list[tuple[str, str, str, str]]) -> None:
    """Write this script's rows (replacing its earlier ones)."""
    data = [{"figure": f, "value": v, "against": a, "command": c} for f, v, a, c in rows]
    (out_dir() / f"{script}.rows.json").write_text(json.dumps(data, indent=1))
