"""Loading one detector's inputs from a local repository, against reading the same files with
astropy alone, in the same run.

The repository is bench_pipeline's one-detector night (a directory datastore and a SQLite
registry: the shape of the pod's pre-cached local repository). Timed, median of ``--repeat``
after one warm-up, page cache warm for both sides:

- ``load_detector_inputs(..., threads=1)`` and with its default threads (what stages get);
- the plan alone (``selection.plan_detector``: the registry queries);
- plain reads: each file the plan names, opened with ``astropy.io.fits`` (every HDU's data
  read) or ``astropy.table.Table.read`` (Parquet), in one thread.

What is left between the Butler load and the plain reads is registry queries plus formatter
work (byte order to native, WCS and metadata parsing) plus the datastore's own bookkeeping;
the table splits it by dataset type. Target (issue 11): load <= 1.3 x plain reads.

    .venv/bin/python tests/benchmarks/bench_load.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import functools
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results
import bench_pipeline


def _median(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up: imports, page cache, numba and astropy caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _plain_read(path: str) -> None:
    from astropy.io import fits
    from astropy.table import Table

    if path.endswith(".parq") or path.endswith(".parquet"):
        Table.read(path)
        return
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            _ = hdu.data


def _get_all(butler: Any, refs: list[Any]) -> None:
    for ref in refs:
        butler.get(ref)


def _read_all(paths: list[str]) -> None:
    for path in paths:
        _plain_read(path)


def main(argv: list[str] | None = None) -> int:
    """Measure, print, record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    from shutterline.butler import inputs, repo, selection

    root, entry = bench_pipeline.prepared_night()
    visit, det = entry["visit"], entry["detectors"][0]
    butler = repo.open_repo(str(root))
    plan = selection.plan_detector(butler, visit, det)
    files: dict[str, list[str]] = {}
    for ref in plan.refs:
        files.setdefault(ref.datasetType.name, []).append(butler.getURI(ref).ospath)
    size = sum(os.path.getsize(p) for paths in files.values() for p in paths)
    t_plan = _median(lambda: selection.plan_detector(butler, visit, det), args.repeat)
    t_one = _median(lambda: inputs.load_detector_inputs(butler, visit, det, threads=1), args.repeat)
    t_many = _median(lambda: inputs.load_detector_inputs(butler, visit, det), args.repeat)
    all_paths = [p for paths in files.values() for p in paths]
    t_plain = _median(lambda: _read_all(all_paths), args.repeat)
    print(f"{len(all_paths)} files, {size / 2**20:.0f} MB; medians of {args.repeat}")
    cmd = "python tests/benchmarks/bench_load.py"
    rows = [("plain astropy reads of a detector's inputs", f"{t_plain:.3f} s", "baseline", cmd)]
    for label, t in (
        ("load_detector_inputs (1 thread)", t_one),
        ("load_detector_inputs (default threads)", t_many),
        ("  of which the plan (registry queries)", t_plan),
    ):
        print(f"  {label:<40} {t:7.3f} s  {t / t_plain:5.2f} x plain reads")
        rows.append((label, f"{t:.3f} s", f"{t / t_plain:.2f} x plain (<= 1.3)", cmd))
    print("  by dataset type: Butler get vs plain read (one thread)")
    for name, paths in files.items():
        refs = [r for r in plan.refs if r.datasetType.name == name]
        t_get = _median(functools.partial(_get_all, butler, refs), args.repeat)
        t_read = _median(functools.partial(_read_all, paths), args.repeat)
        ratio = f"{t_get / t_read:.2f} x read"
        print(f"    {name:<16} x{len(refs):<3} get {t_get:7.3f} s  read {t_read:7.3f} s  {ratio}")
        rows.append((f"  get {name} x{len(refs)}", f"{t_get:.3f} s", ratio, cmd))
    _results.record("bench_load", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
