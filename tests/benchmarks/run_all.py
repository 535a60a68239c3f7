"""``make bench``: run every benchmark script here, one after the other, and keep the output.

Each ``bench_*.py`` prints its own medians and ratios against a baseline it measures in the
same run. Scripts run in separate processes so one's memory does not colour another's times.
Output is printed and written to ``.bench/<script>.txt``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main(argv: list[str]) -> int:
    """Run the named scripts (default: all ``bench_*.py``); return non-zero if any failed."""
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    out_dir = ROOT / ".bench"
    out_dir.mkdir(exist_ok=True)
    failed = []
    for name in names:
        script = HERE / f"{name.removesuffix('.py')}.py"
        print(f"=== {script.name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, check=False
        )
        text = proc.stdout + (f"\n[stderr]\n{proc.stderr[-3000:]}" if proc.returncode else "")
        (out_dir / f"{script.stem}.txt").write_text(text)
        print(text, flush=True)
        print(f"--- {script.name}: exit {proc.returncode} in {time.perf_counter() - t0:.0f} s\n")
        if proc.returncode:
            failed.append(script.name)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
