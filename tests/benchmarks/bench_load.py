"""Loading one detector's inputs from a local repository, against reading the same files with
astropy alone, in the same run.

The repository is bench_pipeline's one-detector night (a directory datastore and a SQLite
registry: the shape of the pod's pre-cached local repository). Timed, median of ``--repeat``
after one warm-up, page cache warm for both sides:

- **the pod's path**: what a worker pod's pipeline container does once its init container
  has pre-cached the detector (a local repository made by ``precache.precache_detector``
  from this one, its files hard links to the same inodes): read the plan the pre-cache
  recorded (``planfile.read_plan``: no registry query) and the datasets
  (``inputs.read_inputs``: one query for every file's datastore record, then the
  formatters), in one thread and in the default four;
- the registry path, ``load_detector_inputs(..., threads=1)`` and with its default threads
  (development mode, and a pre-cache without a recorded plan: planned on the registry,
  then the same reads), and with one thread through astropy's own exposure reader
  (`read_exposure_astropy`, as before issue 11's fifth pass: the baseline of that pass);
- the plan alone (``selection.plan_detector``: the registry queries);
- the demo's pre-cache and load of the same detector (central repository -> a new local
  one -> memory), as before issue 11's fourth pass and as now (`_demo_load_before`);
- plain reads: each file the plan names, opened with ``astropy.io.fits`` (every HDU's data
  read) or ``astropy.table.Table.read`` (Parquet), in one thread, every array held until the
  last file is read, as the loader holds them (also shown: the same with each array dropped
  at once, which is cheaper only because the allocator reuses already mapped pages).

Wall and CPU seconds, all sides interleaved round by round; the two demo sides in rounds of
their own after the others (interleaved with the loads, they made the load that followed
them erratic: the pod path's one-thread CPU 0.33 to 0.81 s over four runs at load 6-10,
against 0.29-0.41 s without them).

What is left between the Butler load and the plain reads is registry queries plus formatter
work (byte order to native, WCS and metadata parsing) plus the datastore's own bookkeeping;
the table splits it by dataset type (each type read as the loader reads it: the datastore
records in one query, Shutterline's own files by their formatter's read function, tables
by ``Butler.get``). Target (issue 11): load <= 1.3 x plain reads.

    .venv/bin/python tests/benchmarks/bench_load.py [--repeat 5] [--quick]

``--quick``: two repetitions, without the demo's pre-cache sides.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results
import bench_pipeline

#: glibc's threshold above which an allocation gets fresh pages of its own. A fresh process
#: (a pod loads once) starts at 128 KiB, so every array is new memory, touched for the first
#: time; glibc raises it after large frees, and a benchmark that loads over and over would
#: then measure reused pages, by an amount that depends on what ran before (1.16 and 2.35
#: x plain reads in two runs of this script). At the fresh-process value every side pays as a pod.
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"


def _interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[float, float]]:
    """Median ``(wall, CPU)`` seconds of each function, run in turn ``repeat`` times.

    One warm-up round first (imports, page cache, numba and astropy caches). Interleaved so
    every side sees the same load on this shared machine; CPU seconds (this process, every
    thread) beside wall, since other processes' turns swell wall time but not CPU time.
    """
    from shutterline.images import fitsread

    for fn in fns.values():
        fn()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            fitsread.clear_wcs_bases()  # every side parses as a pod's one load does
            # The last side's garbage freed now, not in this side's time: astropy's HDULists
            # hold their arrays in reference cycles, and the collector ran whenever it
            # chose (the side after the plain reads paid up to 0.15 s of CPU for them).
            gc.collect()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - t0, time.process_time() - c0))
    return {
        name: (statistics.median(w for w, _ in ts), statistics.median(c for _, c in ts))
        for name, ts in times.items()
    }


def _plain_read(path: str) -> list[Any]:
    """Every array of the file (or its table), read with astropy alone."""
    from astropy.io import fits
    from astropy.table import Table

    if path.endswith(".parq") or path.endswith(".parquet"):
        return [Table.read(path)]
    with fits.open(path, memmap=False) as hdul:
        return [hdu.data for hdu in hdul]


def _get_all(butler: Any, refs: list[Any]) -> list[Any]:
    """``refs`` read as the loader reads them (`shutterline.butler.bulkget`)."""
    from shutterline.butler import bulkget

    refs = bulkget.with_records(butler, refs)
    direct = bulkget.local_readers(butler, refs)
    return [direct[r.id]() if r.id in direct else butler.get(r) for r in refs]


def _read_all(paths: list[str], keep: bool = True) -> list[Any]:
    """Plain reads of ``paths``; ``keep`` holds every array until all are read, as a loader
    must (dropping each at once lets the allocator hand the same, already mapped, pages to
    the next read: 0.12 against 0.43 s of ``numpy.fromfile`` for the 15 template patches,
    the difference being the first touch of fresh memory, which any loader pays)."""
    held = []
    for path in paths:
        data = _plain_read(path)
        if keep:
            held.append(data)
    return held


def _demo_load_before(root: Path, local: Path, visit: int, det: int) -> Any:
    """The demo's pre-cache and load of a detector as they were before issue 11's fourth
    pass: the central repository opened per detector, the local registry filled in ~25
    commits, every file copied (not hard-linked), the inputs planned again on the local
    repository. The same building blocks as `shutterline.butler.precache` and
    `shutterline.pipeline.io`, in the old order."""
    import concurrent.futures

    from shutterline.butler import fetch, inputs, precache, repo, selection

    shutil.rmtree(local, ignore_errors=True)
    central = repo.open_repo(str(root))
    plan = selection.plan_detector(central, visit, det)
    jobs = fetch.file_jobs(central, plan.refs)
    target = repo.create_repo(str(local))
    linking = fetch.same_file_system
    fetch.same_file_system = lambda *_: False  # every file's bytes written again, as before
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            pending = fetch.start_copies(jobs, local, pool)
            fetch.prepare_target(target, central, plan.refs)
            precache._insert_visit_records(target, plan)
            fetch.make_placeholders(jobs, local)
            fetch.register_copies(target, jobs)
            precache._certify_locally(target, plan)
            target.close()
            fetch.wait_copies(pending)
    finally:
        fetch.same_file_system = linking
    return inputs.load_detector_inputs(repo.open_repo(str(local), writeable=True), visit, det)


def _demo_load_now(settings: Any, visit: int, det: int) -> Any:
    """The same through `shutterline.pipeline.io.load_inputs`, as a demo worker runs it."""
    from shutterline.pipeline import io
    from shutterline.telemetry import stages

    shutil.rmtree(io.local_repo_path(settings, visit, det), ignore_errors=True)
    return io.load_inputs(settings, visit, det, stages.StageRecorder())[0]


def _demo_sides(root: Path, visit: int, det: int, tmp: Path) -> dict[str, Callable[[], Any]]:
    from shutterline.pipeline import settings as settings_mod

    settings = settings_mod.Settings(
        repo=str(root), apdb=str(tmp / "apdb.sqlite3"), spool=tmp / "spool", workdir=tmp / "work"
    )
    return {
        "demo pre-cache + load, before": functools.partial(
            _demo_load_before, root, tmp / "before", visit, det
        ),
        "demo pre-cache + load, now": functools.partial(_demo_load_now, settings, visit, det),
    }


def _demo_rows(t: dict[str, tuple[float, float]], cmd: str) -> list[tuple[str, str, str, str]]:
    (bw, bc), (nw, nc) = t["demo pre-cache + load, before"], t["demo pre-cache + load, now"]
    print("  the demo's pre-cache + load of one detector (central -> local -> memory)")
    print(f"    before {bw:7.3f} s wall {bc:6.3f} s CPU; now {nw:7.3f} s wall {nc:6.3f} s CPU")
    print(f"    now / before: {nw / bw:.2f} wall, {nc / bc:.2f} CPU")
    return [
        ("demo pre-cache + load, before", f"{bw:.3f} s wall, {bc:.3f} s CPU", "baseline", cmd),
        (
            "demo pre-cache + load, now",
            f"{nw:.3f} s wall, {nc:.3f} s CPU",
            f"{nw / bw:.2f} x before wall, {nc / bc:.2f} x CPU",
            cmd,
        ),
    ]


def _with_astropy_reader(fn: Callable[[], Any]) -> Any:
    """``fn()`` with exposures read as before issue 11's fifth pass (astropy's own route)."""
    from shutterline.images import exposure as exposure_io

    fast = exposure_io.read_exposure
    exposure_io.read_exposure = exposure_io.read_exposure_astropy
    try:
        return fn()
    finally:
        exposure_io.read_exposure = fast


def _pod_load(local: Any, root: Path, visit: int, det: int, threads: int) -> Any:
    """The pod's pipeline container: the plan its init container recorded, then the reads."""
    from shutterline.butler import inputs, planfile

    plan = planfile.read_plan(root, local.dimensions, visit, det)
    return inputs.inputs_from(plan, inputs.read_inputs(local, plan, threads))


def _loader_sides(
    butler: Any, visit: int, det: int, paths: list[str], pod_root: Path
) -> dict[str, Any]:
    from shutterline.butler import inputs, precache, repo, selection

    one = functools.partial(inputs.load_detector_inputs, butler, visit, det, threads=1)
    precache.precache_detector(butler, str(pod_root), visit, det)  # linked: the same inodes
    local = repo.open_repo(str(pod_root), writeable=True)
    return {
        "plain astropy reads": lambda: _read_all(paths),
        "  the same, each array dropped at once": lambda: _read_all(paths, keep=False),
        "pod: recorded plan + reads (1 thread)": functools.partial(
            _pod_load, local, pod_root, visit, det, 1
        ),
        "pod: recorded plan + reads (default)": functools.partial(
            _pod_load, local, pod_root, visit, det, 4
        ),
        "load_detector_inputs (1 thread)": one,
        "load_detector_inputs (default threads)": functools.partial(
            inputs.load_detector_inputs, butler, visit, det
        ),
        "  of which the plan (registry queries)": functools.partial(
            selection.plan_detector, butler, visit, det
        ),
        "  1 thread, astropy's reader (before)": functools.partial(_with_astropy_reader, one),
    }


def _loader_rows(t: dict[str, tuple[float, float]], labels: list[str], cmd: str) -> list[Any]:
    plain_w, plain_c = t["plain astropy reads"]
    print(f"  {'':<40} {'wall s':>7} {'x plain':>7}  {'CPU s':>6} {'x plain':>7}")
    rows = [("plain astropy reads of a detector's inputs", f"{plain_w:.3f} s wall, "
             f"{plain_c:.3f} s CPU", "baseline", cmd)]  # fmt: skip
    for label in labels:
        w, c = t[label]
        print(f"  {label:<40} {w:7.3f} {w / plain_w:7.2f}  {c:6.3f} {c / plain_c:7.2f}")
        if label != "plain astropy reads":
            target = " (<= 1.3)" if label.startswith(("load_", "pod")) else ""
            ratio = f"{w / plain_w:.2f} x plain wall, {c / plain_c:.2f} x CPU{target}"
            rows.append((label, f"{w:.3f} s", ratio, cmd))
    return rows


def _type_rows(t: dict[str, tuple[float, float]], files: dict[str, Any], cmd: str) -> list[Any]:
    print("  by dataset type: Butler get vs plain read (one thread; wall, CPU)")
    rows = []
    for name in files:
        (gw, gc), (rw, rc) = next(
            (t[k], t[k.replace("get ", "read ", 1)]) for k in t if k.startswith(f"get {name} x")
        )
        ratio = f"{gw / rw:.2f} x read wall, {gc / rc:.2f} x CPU"
        print(f"    {name:<16} get {gw:7.3f} s  read {rw:7.3f} s  {ratio}")
        rows.append((f"  get {name}", f"{gw:.3f} s", ratio, cmd))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure, print, record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repetitions, no demo sides")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else args.repeat
    if MMAP_ENV not in os.environ:  # as in a fresh pod process: see MMAP_ENV
        env = dict(os.environ, **{MMAP_ENV: "131072"})
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    from shutterline.butler import repo, selection

    root, entry = bench_pipeline.prepared_night()
    visit, det = entry["visit"], entry["detectors"][0]
    butler = repo.open_repo(str(root))
    plan = selection.plan_detector(butler, visit, det)
    files: dict[str, list[str]] = {}
    for ref in plan.refs:
        files.setdefault(ref.datasetType.name, []).append(butler.getURI(ref).ospath)
    all_paths = [p for paths in files.values() for p in paths]
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    try:
        sides = _loader_sides(butler, visit, det, all_paths, tmp / "pod")
        labels = list(sides)
        for name, paths in files.items():
            refs = [r for r in plan.refs if r.datasetType.name == name]
            sides[f"get {name} x{len(refs)}"] = functools.partial(_get_all, butler, refs)
            sides[f"read {name} x{len(refs)}"] = functools.partial(_read_all, paths)
        t = _interleaved(sides, repeat)
        if not args.quick:  # in rounds of their own: see the module docstring
            t |= _interleaved(_demo_sides(root, visit, det, tmp), repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(os.path.getsize(p) for p in all_paths)
    print(f"{len(all_paths)} files, {size / 2**20:.0f} MB; medians of {repeat}, interleaved")
    cmd = "python tests/benchmarks/bench_load.py"
    rows = _loader_rows(t, labels, cmd) + _type_rows(t, files, cmd)
    rows += [] if args.quick else _demo_rows(t, cmd)
    _results.record("bench_load", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
