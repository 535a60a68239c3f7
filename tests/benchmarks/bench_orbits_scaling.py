"""Does the nightly precompute's work divide evenly? CPU per object across shards and sizes.

For each catalogue size (``--sizes``) the catalogue is precomputed as 1, 2 and 4 shards
(``--shards``), each shard in its own process exactly as a pod of the Indexed Job runs it
(`precompute.run` with one worker), timing the process's CPU seconds around the run (imports
excluded). A line ``CPU = fixed + per_object x objects`` is fitted over every shard run:
even division means every run lies on it, one per-object cost whatever the shard count and
catalogue size, plus a fixed cost per shard (the report gives both, and each run's spread).

Then, for each size, one shard's in-process pool (``precompute.run(jobs=J)``): 1 against 2
worker processes, interleaved over ``--repeat`` rounds, each run a process in a session of
its own. It reports median wall times, CPU seconds per object (the workers' included: the
same for 1 and 2 workers and for every size when the pool adds no work), the run's own
steps (reading, workers ready, compute, write, ``pieces.json``) and an Amdahl fit of the
medians, ``wall(J) = serial + parallel / J``.

Last, the wall time of the whole catalogue (largest size) with the work split over 2
shard processes at once against 1 process, interleaved over ``--repeat`` rounds, with the load
average before and after each run: on a shared 2-core machine the ratio says as much about
the other users as about the code, so read it with the load beside it. Each shard process
runs in a session of its own (see `_start`): Linux's autogroup scheduler shares the CPU
between sessions first, so two processes of one session never get more than one would.

    .venv/bin/python tests/benchmarks/bench_orbits_scaling.py             # 100 000, 400 000
    .venv/bin/python tests/benchmarks/bench_orbits_scaling.py --quick     # 20 000, 60 000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path
from typing import Any

CACHE = Path.home() / ".cache" / "shutterline" / "bench" / "orbits-scaling-v1"
MJD_START, HOURS, EPOCH = 61280.0, 4.0, 61200.0

#: The child: one shard in one process (and its ``jobs`` workers), its CPU seconds and wall
#: seconds around `precompute.run` only, and the run's own step timings. Workers forked from
#: the child are its children (in RUSAGE_CHILDREN once joined); those of a pool server are
#: not: their CPU is what they report, plus one import (the server's, as the child's own).
_CHILD = """
import json, resource, sys, time
def cpu():
    return sum(getattr(resource.getrusage(who), f) for who in
               (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))
imported = cpu()
from pathlib import Path
from shutterline.solarsystem import precompute
imported = cpu() - imported
if __name__ == "__main__":
    catalog, out, shard, shards, start, n_pieces, jobs = sys.argv[1:8]
    night = precompute.Night(float(start), int(n_pieces))
    before, wall, steps = cpu(), time.perf_counter(), {}
    pieces = precompute.run(Path(catalog), Path(out), night, shard=int(shard),
                            shards=int(shards), jobs=int(jobs), timings=steps)
    spent = cpu() - before
    if int(jobs) > 1 and not steps.get("workers_forked"):  # a pool server's workers are
        spent += steps["workers_cpu"] + imported  # not children: their CPU, one import
    print(json.dumps({"cpu_s": spent, "wall_s": time.perf_counter() - wall,
                      "pieces": pieces, "steps_s": steps, "import_cpu_s": imported}))
"""


def _start(
    catalog: Path, out: Path, shard: int, shards: int, jobs: int = 1
) -> subprocess.Popen[str]:
    n_pieces = str(int(HOURS / 2))
    args = [str(catalog), str(out), str(shard), str(shards), str(MJD_START), n_pieces, str(jobs)]
    # A session of its own, as a pod is scheduled on its own: with the kernel's autogroup
    # scheduling, processes of one session share that session's CPU share, so two shards in
    # the bench's session could not get more CPU than one while other sessions are busy.
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"precompute shard process failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _objects(n: int, shard: int, shards: int) -> int:
    from shutterline.solarsystem import precompute

    return sum(s.stop - s.start for s in precompute.shard_rows(n, shard, shards))


def _shard_cpu(catalog: Path, work: Path, n: int, shards: int) -> list[tuple[int, float]]:
    """(objects, CPU seconds) of every shard of ``shards``, run one after the other."""
    runs = []
    for shard in range(shards):
        out = work / f"pieces-{shards}"
        result = _finish(_start(catalog, out, shard, shards))
        runs.append((_objects(n, shard, shards), float(result["cpu_s"])))
        print(f"n={n:,} shard {shard}/{shards}: {runs[-1][1]:.1f} CPU s, {runs[-1][0]:,} objects")
    shutil.rmtree(work / f"pieces-{shards}", ignore_errors=True)
    return runs


def _fit(runs: list[tuple[int, float]]) -> dict[str, float]:
    """CPU = fixed + per_object x objects, least squares over every shard run with objects.

    The fixed part is paid once per shard: the site's positions at the node times, and
    mostly the files, one per region and piece, since nearly every region holds objects of
    every shard. Even division means every run lies on the line.
    """
    import numpy as np

    objects, cpu = (np.array(v, float) for v in zip(*[r for r in runs if r[0]], strict=True))
    slope, fixed = np.polyfit(objects, cpu, 1)
    residual = cpu - (fixed + slope * objects)
    return {
        "fixed_s": float(fixed),
        "per_object_us": float(slope * 1e6),
        "largest_residual_s": float(np.abs(residual).max()),
        "largest_residual_fraction": float(np.abs(residual / cpu).max()),
    }


def _wall(catalog: Path, work: Path, processes: int) -> float:
    """Wall time of the whole catalogue split over ``processes`` shard processes at once."""
    out = work / f"wall-{processes}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    procs = [_start(catalog, out, shard, processes) for shard in range(processes)]
    for proc in procs:
        _finish(proc)
    wall = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return wall


def _pool_rounds(catalog: Path, work: Path, n: int, repeat: int) -> dict[str, Any]:
    """1 against 2 worker processes of one shard (``--jobs``), interleaved rounds.

    Each run is one process in a session of its own with its pool; the medians of wall
    time, CPU seconds per object and the run's steps, and an Amdahl fit of the two medians:
    ``wall(J) = serial + parallel / J``, against the steps measured as serial.
    """
    runs: dict[str, list[dict[str, Any]]] = {"1": [], "2": []}
    for round_ in range(repeat):
        for jobs in (1, 2) if round_ % 2 == 0 else (2, 1):
            out = work / f"pool-{jobs}"
            shutil.rmtree(out, ignore_errors=True)
            load = os.getloadavg()[0]
            result = _finish(_start(catalog, out, 0, 1, jobs))
            shutil.rmtree(out, ignore_errors=True)
            runs[str(jobs)].append({**result, "load": load})
            steps = " ".join(f"{k} {v:.1f}" for k, v in result["steps_s"].items())
            head = f"n={n:,} round {round_}: {jobs} worker(s): {result['wall_s']:.1f} s wall"
            print(f"{head}, {result['cpu_s']:.1f} CPU s ({steps}), load {load:.1f}", flush=True)
    med = {
        j: {
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "cpu_us_per_object": statistics.median(r["cpu_s"] for r in rs) / n * 1e6,
            "steps_s": {
                k: statistics.median(r["steps_s"].get(k, 0.0) for r in rs) for k in rs[0]["steps_s"]
            },
        }
        for j, rs in runs.items()
    }
    one, two = med["1"]["wall_s"], med["2"]["wall_s"]
    parallel = 2.0 * (one - two)
    return {
        "runs": runs,
        "median": med,
        "speedup_2": one / two,
        "amdahl": {"serial_s": one - parallel, "parallel_s": parallel},
        "serial_steps_2_s": sum(med["2"]["steps_s"].get(k, 0.0) for k in ("read", "meta"))
        + med["2"]["steps_s"].get("workers_ready", 0.0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 400_000])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved wall-time rounds")
    parser.add_argument("--quick", action="store_true", help="20 000 and 60 000 orbits, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeat = [20_000, 60_000], 1
    from shutterline.simulate import orbitcatalog
    from shutterline.solarsystem import mpcorbits

    record: dict[str, Any] = {"hours": HOURS, "shard_runs": {}, "load_average": {}}
    for n in args.sizes:
        work = CACHE / f"n{n}"
        catalog = work / "catalog.npz"
        if not catalog.exists():
            mpcorbits.write_catalog(catalog, orbitcatalog.synthesize(n, 0, EPOCH))
        for shards in args.shards:
            record["shard_runs"][f"{n}/{shards}"] = _shard_cpu(catalog, work, n, shards)
    record["cpu"] = _fit([r for runs in record["shard_runs"].values() for r in runs])
    record["pool"] = {}
    for n in args.sizes:
        size = CACHE / f"n{n}"
        record["pool"][str(n)] = _pool_rounds(size / "catalog.npz", size, n, args.repeat)
    walls: dict[str, list[float]] = {"1": [], "2": []}
    loads: list[list[float]] = []
    for round_ in range(args.repeat):
        for processes in (1, 2) if round_ % 2 == 0 else (2, 1):
            loads.append(list(os.getloadavg()))
            walls[str(processes)].append(_wall(catalog, work, processes))
            print(f"round {round_}: {processes} process(es): {walls[str(processes)][-1]:.1f} s")
    loads.append(list(os.getloadavg()))
    record["wall_n"] = args.sizes[-1]
    record["wall_runs_s"] = walls
    record["wall_s"] = {k: statistics.median(v) for k, v in walls.items()}
    record["speedup_2"] = record["wall_s"]["1"] / record["wall_s"]["2"]
    record["load_average"] = loads
    print(json.dumps(record, indent=1))
    (CACHE / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    _record_rows(record, args)
    return 0


def _record_rows(record: dict[str, Any], args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _results

    cmd = "python tests/benchmarks/bench_orbits_scaling.py" + (" --quick" if args.quick else "")
    load = max(la[0] for la in record["load_average"])
    cpu = record["cpu"]
    _results.record(
        "bench_orbits_scaling",
        [
            (f"precompute CPU per object, sizes {args.sizes}, shards {args.shards}",
             f"{cpu['per_object_us']:.0f} us + {cpu['fixed_s']:.1f} s per shard",
             f"every run within {cpu['largest_residual_fraction']:.0%} of the line", cmd),
            (f"precompute {record['wall_n']:,} orbits, 2 processes vs 1",
             f"{record['wall_s']['2']:.1f} s vs {record['wall_s']['1']:.1f} s",
             f"x{record['speedup_2']:.2f} (linear: x2), load up to {load:.1f}", cmd),
            *_pool_rows(record, cmd),
        ],
    )  # fmt: skip


def _pool_rows(record: dict[str, Any], cmd: str) -> list[tuple[str, str, str, str]]:
    rows = []
    for n, pool in record["pool"].items():
        med, fit = pool["median"], pool["amdahl"]
        load = max(r["load"] for rs in pool["runs"].values() for r in rs)
        rows.append(
            (
                f"precompute {int(n):,} orbits, one shard, 2 workers vs 1 (medians)",
                f"{med['2']['wall_s']:.1f} s vs {med['1']['wall_s']:.1f} s",
                f"x{pool['speedup_2']:.2f}; serial {fit['serial_s']:.1f} s + parallel "
                f"{fit['parallel_s']:.1f} s; CPU {med['1']['cpu_us_per_object']:.1f} / "
                f"{med['2']['cpu_us_per_object']:.1f} us per object; load up to {load:.1f}",
                cmd,
            )
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
