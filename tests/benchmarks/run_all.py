"""``make bench``: run every benchmark script here, one after the other, and keep the output.

Each ``bench_*.py`` prints its own medians and ratios against a baseline it measures in the
same run. Scripts run in separate processes so one's memory does not colour another's times.
Output is printed and written to ``.bench/<script>.txt``; at the end ONE table: the figures
the scripts recorded (``_results.record``), the science and orbit figures read from the JSON
records ``bench_truth.py`` and ``bench_orbits.py`` write, and for a script that recorded
nothing, where its printed figures are. Each row names the command that made it.

    .venv/bin/python tests/benchmarks/run_all.py [--quick] [SCRIPT ...]

``--quick`` (``make bench BENCH_QUICK=1``) runs each script at a small size (`QUICK_ARGS`),
to check that the whole run works unattended; its figures are not the issue's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BENCH_CACHE = Path.home() / ".cache" / "shutterline" / "bench"

#: Options of each script in quick mode (scripts not named run as they are).
QUICK_ARGS: dict[str, str] = {
    "bench_alerts": "--quick",
    "bench_demo": "-- --shape 1024x2048 --fields 1",
    "bench_differencing": "--repeat 1",
    "bench_isr": "--repeat 1",
    "bench_load": "--repeat 1",
    "bench_operator_scale": "--visits 20 --complete-visits 2 --detectors 4 --timeout 120",
    "bench_orbits": "--n 20000 --workers 1 --detectors 5",
    "bench_orbits_scaling": "--quick",
    "bench_pipeline": "--repeat 1",
    "bench_precache": "--detectors 2 --repeat 1",
    "bench_processing": "--repeat 1",
    "bench_relay": "--packets 300 --repeat 1",
    "bench_replay": "--visits 1 --gap 30 --lead 20",
    "bench_simulate": "--repeat 1",
    "bench_start": "--repeat 1",
    "bench_telemetry": "--repeat 1",
    "bench_templates": "--quick",
    "bench_write": "--repeat 2",
    "bench_truth": "--small",
}
#: Longest a script may run (s) before it is stopped and reported failed, so the run ends.
TIMEOUT_S = {"full": 3 * 3600, "quick": 1200}

Row = tuple[str, str, str, str, str]  # script, figure, value, against, command


def main(argv: list[str]) -> int:
    """Run the named scripts (default: all ``bench_*.py``); return non-zero if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the run")
    parser.add_argument("scripts", nargs="*", help="default: every bench_*.py here")
    args = parser.parse_args(argv)
    names = [n.removesuffix(".py") for n in args.scripts] or sorted(
        p.stem for p in HERE.glob("bench_*.py")
    )
    out_dir = ROOT / ".bench"
    out_dir.mkdir(exist_ok=True)
    for old in out_dir.glob("*.rows.json"):
        old.unlink()
    env = dict(os.environ, SHUTTERLINE_BENCH_OUT=str(out_dir))
    failed, started = [], time.time()
    for name in names:
        if not _run_script(name, args.quick, env, out_dir):
            failed.append(name)
    print(summary_table(out_dir, names, args.quick, started))
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


def _run_script(name: str, quick: bool, env: dict[str, str], out_dir: Path) -> bool:
    """Run one script, print and keep its output; True if it exited 0 in time."""
    script = HERE / f"{name}.py"
    extra = QUICK_ARGS.get(name, "").split() if quick else []
    print(f"=== {script.name} {' '.join(extra)}".rstrip(), flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(script), *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=TIMEOUT_S["quick" if quick else "full"],
        )
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout = -1, _text(exc.stdout)
        stderr = f"stopped after {exc.timeout:.0f} s\n{_text(exc.stderr)}"
    text = stdout + (f"\n[stderr]\n{stderr[-3000:]}" if code else "")
    (out_dir / f"{script.stem}.txt").write_text(text)
    print(text, flush=True)
    print(f"--- {script.name}: exit {code} in {time.perf_counter() - t0:.0f} s\n", flush=True)
    return code == 0


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def _newest(pattern: str, since: float) -> Path | None:
    """The newest file matching ``pattern`` under the bench cache written after ``since``."""
    found = [p for p in BENCH_CACHE.glob(pattern) if p.stat().st_mtime >= since]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _truth_rows(path: Path, quick: bool) -> list[Row]:
    """Science figures from ``bench_truth.py``'s ``results.json``, fitting and validation."""
    cmd = "python tests/benchmarks/bench_truth.py" + (" --small" if quick else "")
    rows: list[Row] = []
    for name, res in json.loads(path.read_text()).items():
        if not isinstance(res, dict):  # the record's "commit"
            continue
        t = res["totals"]
        correct, detected = t["asteroids"]
        rows += [
            ("bench_truth", f"{name}: completeness SNR >= 10",
             f"{t['completeness_snr10']} ({t['found']}/{t['expected']})", ">= 0.95", cmd),
            ("bench_truth", f"{name}: false DIA sources per detector-visit",
             str(t["false_mean"]), "<= 5", cmd),
            ("bench_truth", f"{name}: asteroid association", f"{correct}/{detected}", ">= 95%",
             cmd),
            ("bench_truth", f"{name}: astrometric residual median",
             f"{t['astrometry_median_arcsec']} arcsec", "< 0.1", cmd),
        ]  # fmt: skip
    return rows


def _orbits_rows(path: Path, quick: bool) -> list[Row]:
    """Precompute and lookup figures from ``bench_orbits.py``'s ``record.json``."""
    r = json.loads(path.read_text())
    cmd = "python tests/benchmarks/bench_orbits.py" + (f" --n {r['n']}" if quick else "")
    rows: list[Row] = [
        ("bench_orbits", f"precompute {r['n']:,} orbits, {w} worker(s)", f"{s:.1f} s",
         f"{r['speedup'][w]:.2f} x 1 worker", cmd)
        for w, s in r["wall_s"].items()
    ]  # fmt: skip
    rows.append(("bench_orbits", "lookup per detector, median / max",
                 f"{r['lookup_median_s'] * 1e3:.0f} / {r['lookup_max_s'] * 1e3:.0f} ms",
                 "< 100 ms", cmd))  # fmt: skip
    return rows


#: Scripts that keep their figures in a JSON record of their own: where, and how to read it.
JSON_READERS: dict[str, tuple[str, Callable[[Path, bool], list[Row]]]] = {
    "bench_truth": ("truth-nights-*/*/results.json", _truth_rows),
    "bench_orbits": ("orbits-*/n*/record.json", _orbits_rows),
}


def _rows(out_dir: Path, names: list[str], quick: bool, since: float) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        recorded = out_dir / f"{name}.rows.json"
        reader = JSON_READERS.get(name)
        record = _newest(reader[0], since) if reader else None
        if recorded.exists():
            data: list[dict[str, Any]] = json.loads(recorded.read_text())
            tail = " " + QUICK_ARGS.get(name, "") if quick else ""
            rows += [
                (name, r["figure"], r["value"], r["against"], r["command"] + tail.rstrip())
                for r in data
            ]
        elif reader and record is not None:
            rows += reader[1](record, quick)
        else:
            cmd = f"python tests/benchmarks/{name}.py"
            rows.append((name, "(its figures are printed only)", f"see .bench/{name}.txt", "",
                         cmd))  # fmt: skip
    return rows


def summary_table(out_dir: Path, names: list[str], quick: bool = False, since: float = 0) -> str:
    """The figures of every script run, as one table."""
    rows = _rows(out_dir, names, quick, since)
    if not rows:
        return "(no figures recorded)"
    head = ("script", "figure", "value", "against", "command")
    widths = [max(len(h), *(len(str(r[i])) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]  # fmt: skip
    title = "=== summary" + (" (QUICK: small sizes, not the issue's figures)" if quick else "")
    return f"{title}; commands and baselines: tests/benchmarks/README.md\n" + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
