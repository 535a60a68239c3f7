"""``make demo``'s wall time, where it goes, and the science figures it shows, in one run.

Runs ``shutterline demo`` (the command ``make demo`` runs; the full night: 3 fields x 2
2048 x 4096 detectors x 4 visits, templates from 3 earlier visits per field) in a fresh
work directory, times each of its steps from the ``== step`` lines it prints, and reads the
science figures from its ``out/summary.json``. Target (issue 11): <= 180 s on a quiet 2-core
machine from a warm environment (``make env`` done: bytecode written, numba cache warm).

    .venv/bin/python tests/benchmarks/bench_demo.py [--workdir DIR] [--against REV [--repeat N]]
        [-- DEMO OPTIONS]

Options after ``--`` go to ``shutterline demo`` (e.g. ``-- --shape 512x1024 --fields 1`` for a
quick check of this script; the target is for the default night).

``--against REV``: the baseline side by side. The demo as of git revision ``REV`` (its
``pipeline-image`` from ``git archive``, first on ``PYTHONPATH``) and this tree's alternate,
``--repeat`` times each, the baseline first; medians of wall and of CPU (the demo and its
workers), and their ratios. The baseline's copy first runs a one-field 1024 x 2048 night,
untimed, so that its numba cache is as warm as this tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

ROOT = Path(__file__).resolve().parents[2]


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for processes, and theirs
    return usage.ru_utime + usage.ru_stime


def _run(
    workdir: Path, extra: list[str], env: dict[str, str] | None = None, log_name: str = "bench_demo"
) -> tuple[float, list[tuple[str, float]]]:
    """Wall seconds of the demo and of each of its steps; its output in ``<log_name>.log``."""
    cmd = [sys.executable, "-u", "-m", "shutterline.cli.main", "demo", "--workdir", str(workdir)]
    cmd += extra
    steps: list[tuple[str, float]] = []
    t0 = last = time.perf_counter()
    name = "start-up"
    log: list[str] = []
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "env": env}
    with subprocess.Popen(cmd, **popen) as p:  # type: ignore[call-overload]
        assert p.stdout is not None
        for line in p.stdout:
            log.append(line)
            if line.startswith("== "):
                now = time.perf_counter()
                steps.append((name, now - last))
                name, last = line[3:].strip(), now
    end = time.perf_counter()
    steps.append((name, end - last))
    (_results.out_dir() / f"{log_name}.log").write_text("".join(log))  # its own breakdown too
    if p.returncode:
        tail = "".join(log[-40:])
        raise SystemExit(f"{tail}\nshutterline demo exited {p.returncode} after {end - t0:.0f} s")
    return end - t0, steps


def _baseline_env(rev: str, where: Path) -> dict[str, str]:
    """The environment that runs the demo as of ``rev`` (extracted under ``where``), its
    numba cache warmed by an untimed small night."""
    where.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "pipeline-image"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(where / "pipeline-image"), env.get("PYTHONPATH", "")])
    warm = [sys.executable, "-m", "shutterline.cli.main", "demo", "--workdir", str(where / "w")]
    warm += ["--shape", "1024x2048", "--fields", "1", "--visits", "1"]
    subprocess.run(warm, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(where / "w", ignore_errors=True)
    return env


def _side_by_side(rev: str, repeat: int, extra: list[str]) -> list[tuple[str, str, str, str]]:
    """Baseline (``rev``) and this tree alternately; rows of the medians and ratios."""
    times: dict[str, list[tuple[float, float]]] = {"baseline": [], "candidate": []}
    steps: dict[str, dict[str, float]] = {"baseline": {}, "candidate": {}}
    with tempfile.TemporaryDirectory(prefix="bench-demo-ab-") as tmp:
        envs = {"baseline": _baseline_env(rev, Path(tmp) / "base"), "candidate": None}
        for i in range(repeat):
            for side, env in envs.items():
                cpu0 = _cpu_children()
                wall, side_steps = _run(
                    Path(tmp) / f"{side}{i}", extra, env, f"bench_demo-{side}{i}"
                )
                for step, seconds in side_steps:  # the mean over the runs
                    steps[side][step] = steps[side].get(step, 0.0) + seconds / repeat
                times[side].append((wall, _cpu_children() - cpu0))
                shutil.rmtree(Path(tmp) / f"{side}{i}", ignore_errors=True)
                print(f"  {side} run {i + 1}: {wall:.0f} s wall, {times[side][-1][1]:.0f} s CPU")
    (bw, bc), (cw, cc) = (
        (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for v in times.values()
    )
    print(f"demo against {rev}, median of {repeat}: wall {bw:.0f} -> {cw:.0f} s (x{cw / bw:.2f}), "
          f"CPU {bc:.0f} -> {cc:.0f} s (x{cc / bc:.2f})")  # fmt: skip
    print(f"  {'step (mean wall s)':<58} {'baseline':>8} {'now':>8}")
    for step in dict.fromkeys([*steps["baseline"], *steps["candidate"]]):
        b, c = (steps[side].get(step, float("nan")) for side in ("baseline", "candidate"))
        print(f"  {step:<58} {b:8.1f} {c:8.1f}")
    cmd = f"python tests/benchmarks/bench_demo.py --against {rev} --repeat {repeat}"
    return [
        (f"make demo, wall, against {rev}", f"{cw:.0f} s", f"{bw:.0f} s (x{cw / bw:.2f})", cmd),
        (f"make demo, CPU, against {rev}", f"{cc:.0f} s", f"{bc:.0f} s (x{cc / bc:.2f})", cmd),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the demo once, print and record its times and figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    parser.add_argument("--against", metavar="REV", help="also run the demo as of git REV")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side (--against)")
    parser.add_argument("demo_args", nargs="*", help="after --: options for shutterline demo")
    args = parser.parse_args(argv)
    if args.against:
        _results.record("bench_demo", _side_by_side(args.against, args.repeat, args.demo_args))
        return 0
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
