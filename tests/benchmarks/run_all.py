"""``make bench``: run every benchmark script here, one after the other, and keep the output.

Each ``bench_*.py`` prints its own medians and ratios against a baseline it measures in the
same run. Scripts run in separate processes so one's memory does not colour another's times.
Output is printed and written to ``.bench/<script>.txt``; the figures the scripts record
(``_results.record``) are printed last as one table, each with the command that made it.
"""

from __future__ import annotations

import json
import os
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
    for old in out_dir.glob("*.rows.json"):
        old.unlink()
    env = dict(os.environ, SHUTTERLINE_BENCH_OUT=str(out_dir))
    failed = []
    for name in names:
        script = HERE / f"{name.removesuffix('.py')}.py"
        print(f"=== {script.name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        text = proc.stdout + (f"\n[stderr]\n{proc.stderr[-3000:]}" if proc.returncode else "")
        (out_dir / f"{script.stem}.txt").write_text(text)
        print(text, flush=True)
        print(f"--- {script.name}: exit {proc.returncode} in {time.perf_counter() - t0:.0f} s\n")
        if proc.returncode:
            failed.append(script.name)
    print(summary_table(out_dir))
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


def summary_table(out_dir: Path) -> str:
    """The recorded figures of every script, as one table."""
    rows = []
    for path in sorted(out_dir.glob("*.rows.json")):
        script = path.name.removesuffix(".rows.json")
        for r in json.loads(path.read_text()):
            rows.append((script, r["figure"], r["value"], r["against"]))
    if not rows:
        return "(no figures recorded)"
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    head = ("script", "figure", "value", "against")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "=== summary (commands: tests/benchmarks/README.md)\n" + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
