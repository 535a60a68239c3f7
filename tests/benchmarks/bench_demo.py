"""``make demo``'s wall time, where it goes, and the science figures it shows, in one run.

Runs ``shutterline demo`` (the command ``make demo`` runs; the full night: 3 fields x 2
2048 x 4096 detectors x 4 visits, templates from 3 earlier visits per field) in a fresh
work directory, times each of its steps from the ``== step`` lines it prints, and reads the
science figures from its ``out/summary.json``. Target (issue 11): <= 180 s on a quiet 2-core
machine from a warm environment (``make env`` done: bytecode written, numba cache warm).

    .venv/bin/python tests/benchmarks/bench_demo.py [--workdir DIR] [-- DEMO OPTIONS]

Options after ``--`` go to ``shutterline demo`` (e.g. ``-- --shape 512x1024 --fields 1`` for a
quick check of this script; the target is for the default night).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results


def _run(workdir: Path, extra: list[str]) -> tuple[float, list[tuple[str, float]]]:
    """Wall seconds of the demo and of each of its steps."""
    cmd = [sys.executable, "-u", "-m", "shutterline.cli.main", "demo", "--workdir", str(workdir)]
    cmd += extra
    steps: list[tuple[str, float]] = []
    t0 = last = time.perf_counter()
    name = "start-up"
    log: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        assert p.stdout is not None
        for line in p.stdout:
            log.append(line)
            if line.startswith("== "):
                now = time.perf_counter()
                steps.append((name, now - last))
                name, last = line[3:].strip(), now
    end = time.perf_counter()
    steps.append((name, end - last))
    (_results.out_dir() / "bench_demo.log").write_text("".join(log))  # its own breakdown too
    if p.returncode:
        tail = "".join(log[-40:])
        raise SystemExit(f"{tail}\nshutterline demo exited {p.returncode} after {end - t0:.0f} s")
    return end - t0, steps


def main(argv: list[str] | None = None) -> int:
    """Run the demo once, print and record its times and figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    parser.add_argument("demo_args", nargs="*", help="after --: options for shutterline demo")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-demo-"))
    try:
        wall, steps = _run(workdir, args.demo_args)
        truth = json.loads((workdir / "out" / "summary.json").read_text())["truth"]
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    cmd = "python tests/benchmarks/bench_demo.py"
    print(f"shutterline demo: {wall:.0f} s wall (target <= 180 s on a quiet machine)")
    night = " ".join(args.demo_args) or "default night"
    rows = [(f"make demo, wall ({night})", f"{wall:.0f} s", "<= 180 s (quiet machine)", cmd)]
    for name, seconds in steps:
        print(f"  {name:<50} {seconds:6.0f} s")
        rows.append((f"  demo: {name}", f"{seconds:.0f} s", f"{seconds / wall:.0%}", cmd))
    figures = {
        "completeness (SNR >= 10)": f"{truth['completeness_snr10']:.3f}",
        "false DIA sources per detector-visit": f"{truth['false_per_detector_visit']['mean']:.1f}",
        "astrometric residual median": f"{truth['astrometry_median_arcsec']:.3f} arcsec",
    }
    for name, value in figures.items():
        print(f"  {name}: {value}")
        rows.append((f"science: {name}", value, "demo night vs truth", cmd))
    _results.record("bench_demo", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
