"""Process start: from ``shutterline`` starting to its first stage, and the imports it pays.

Against ``python -c pass`` measured in the same run (median of ``--repeat``):

- ``shutterline run --help``: the entry point alone (it registers only ``run``);
- ``shutterline run ... --direct`` on bench_pipeline's one-detector night: the wall time from
  spawning the process to the start of its first stage span (``load_inputs``) and to ISR,
  read from the spans file the run writes;
- the largest cumulative imports of the run path (``python -X importtime``).

    .venv/bin/python tests/benchmarks/bench_start.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results
import bench_pipeline

CLI = [sys.executable, "-m", "shutterline.cli.main"]


def _wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _to_first_stage(root: Path, visit: int, detector: int) -> tuple[float, float]:
    """Seconds from spawning ``shutterline run`` to its first stage span and to ISR."""
    with tempfile.TemporaryDirectory() as tmp:
        spans = Path(tmp) / "spans.jsonl"
        args = ["run", "--repo", str(root), "--visit", str(visit), "--detectors", str(detector)]
        args += ["--direct", "--apdb", f"{tmp}/apdb.sqlite3", "--spool", f"{tmp}/spool"]
        args += ["--workdir", tmp, "--spans", str(spans)]
        t0 = time.time_ns()
        subprocess.run([*CLI, *args], capture_output=True, check=True)
        starts: dict[str, int] = {}
        for line in spans.read_text().splitlines():
            span = json.loads(line)
            starts.setdefault(span["name"], span["start_time_unix_nano"])
    first = min(v for k, v in starts.items() if not k.startswith(("visit", "detector")))
    return (first - t0) / 1e9, (starts["isr"] - t0) / 1e9


def _top_imports(n: int = 8) -> list[tuple[str, float]]:
    code = "import shutterline.pipeline.visit, shutterline.pipeline.detector"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    )
    rows = []
    for line in proc.stderr.splitlines()[1:]:
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and not parts[2].startswith(" ") and "." not in parts[2]:
            rows.append((parts[2], int(parts[1]) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def main(argv: list[str] | None = None) -> int:
    """Measure, print, record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    root, entry = bench_pipeline.prepared_night()
    base = _wall([sys.executable, "-c", "pass"], args.repeat)
    helps = _wall([*CLI, "run", "--help"], args.repeat)
    firsts, isrs = [], []
    for _ in range(args.repeat):
        first, isr = _to_first_stage(root, entry["visit"], entry["detectors"][0])
        firsts.append(first)
        isrs.append(isr)
    first, isr = statistics.median(firsts), statistics.median(isrs)
    imports = _top_imports()
    print(f"python -c pass                     {base:6.2f} s")
    print(f"shutterline run --help             {helps:6.2f} s")
    print(f"shutterline run: to first stage    {first:6.2f} s  (load_inputs span starts)")
    print(f"shutterline run: to ISR            {isr:6.2f} s")
    print("run path, largest top-level imports (cumulative s): "
          + ", ".join(f"{m} {s:.2f}" for m, s in imports))  # fmt: skip
    cmd = "python tests/benchmarks/bench_start.py"
    _results.record(
        "bench_start",
        [
            ("python -c pass", f"{base:.2f} s", "baseline", cmd),
            ("shutterline run --help", f"{helps:.2f} s", f"{helps - base:+.2f} s", cmd),
            ("shutterline run: start to first stage", f"{first:.2f} s", "", cmd),
            ("shutterline run: start to ISR", f"{isr:.2f} s", "", cmd),
            ("largest imports", ", ".join(f"{m} {s:.1f}s" for m, s in imports[:5]), "", cmd),
        ],
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    raise SystemExit(main())
