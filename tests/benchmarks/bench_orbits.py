"""The nightly known-object precompute at catalogue scale, and the per-detector lookup.

Synthesizes ``--n`` orbits (default 1.5 million, the MPC's count), precomputes a 12-hour
night of topocentric Chebyshev pieces with 1 and 2 worker processes (wall time, speed-up
against 1 worker in the same run), then times the per-detector lookup and evaluation for
DECam-sized footprints (radius 0.17 deg, motion pad 0.02 deg) centred where objects are, against
today's per-detector path (`predict.predict_visit`'s two-body pass over the whole
catalogue), and reports one detector's share of the dataset: the bytes of the region files
it reads and of the rows it keeps. A picture and a JSON record go to the cache directory.

    .venv/bin/python tests/benchmarks/bench_orbits.py             # 1.5 million orbits
    .venv/bin/python tests/benchmarks/bench_orbits.py --n 100000  # scaled down
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path
from typing import Any

CACHE = Path.home() / ".cache" / "shutterline" / "bench" / "orbits-v1"
MJD_START, HOURS, EPOCH = 61280.0, 12.0, 61200.0
DETECTOR_RADIUS_DEG, MOTION_PAD_DEG = 0.17, 0.02


def _precompute(catalog: Path, out: Path, jobs: int) -> float:
    from shutterline.solarsystem import precompute

    shutil.rmtree(out, ignore_errors=True)
    night = precompute.Night(MJD_START, int(HOURS / 2))
    start = time.perf_counter()
    precompute.run(catalog, out, night, jobs=jobs)
    return time.perf_counter() - start


def _footprints(pieces: Path, count: int) -> list[tuple[float, float]]:
    """Footprint centres drawn from piece centres (where a detector would see objects)."""
    import numpy as np

    files = sorted(pieces.glob("r*.p003.*.npz"))
    sizes = np.array([p.stat().st_size for p in files], float)
    rng = np.random.default_rng(1)
    centres = []
    for pick in rng.choice(len(files), size=count, p=sizes / sizes.sum()):  # as objects lie
        path = files[int(pick)]
        with np.load(path) as data:
            k = int(rng.integers(len(data["ra"])))
            centres.append((float(data["ra"][k]), float(data["dec"][k])))
    return centres


def _lookups(pieces: Path, catalog: Path, count: int) -> dict[str, Any]:
    import numpy as np

    from shutterline.camera import site
    from shutterline.solarsystem import lookup, mpcorbits, predict

    mjd = MJD_START + 0.3  # in piece 3 of the night
    centres = _footprints(pieces, count)
    times, found, file_bytes, row_bytes = [], [], [], []
    for centre in centres:
        start = time.perf_counter()
        table = lookup.lookup(pieces, centre, DETECTOR_RADIUS_DEG, mjd, MOTION_PAD_DEG)
        times.append(time.perf_counter() - start)
        found.append(len(table))
        files = lookup.files_for(pieces, centre, DETECTOR_RADIUS_DEG + MOTION_PAD_DEG, 3)
        file_bytes.append(sum(p.stat().st_size for p in files))
        row_bytes.append(len(table) * _row_bytes(files[0]))
    orbits = mpcorbits.to_orbits_table(mpcorbits.read_catalog(catalog))
    base = []
    for centre in centres[:3]:
        start = time.perf_counter()
        predict.predict_visit(orbits, mjd, centre, DETECTOR_RADIUS_DEG, site=site.CTIO)
        base.append(time.perf_counter() - start)
    return {
        "lookup_median_s": statistics.median(times),
        "lookup_max_s": max(times),
        "objects_per_detector_median": statistics.median(found),
        "files_bytes_per_detector_median": statistics.median(file_bytes),
        "kept_rows_bytes_per_detector_median": statistics.median(row_bytes),
        "baseline_predict_visit_median_s": statistics.median(base),
        "speedup_vs_baseline": statistics.median(base) / statistics.median(times),
        "n_detectors": count,
        "max_objects": int(np.max(found)),
    }


def _row_bytes(path: Path) -> int:
    import numpy as np

    with np.load(path) as data:
        return sum(data[k][:1].nbytes for k in data.files)


def _picture(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    workers = [int(k) for k in record["wall_s"]]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(workers, [record["wall_s"][str(w)] for w in workers], "o-", label="measured")
    ax.plot(workers, [record["wall_s"]["1"] / w for w in workers], "--", label="linear")
    ax.set_xlabel("worker processes")
    ax.set_ylabel("precompute wall time (s)")
    ax.set_title(f"{record['n']:,} orbits, {HOURS:.0f} h night")
    ax.set_xticks(workers)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_500_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--detectors", type=int, default=30)
    args = parser.parse_args()
    from shutterline.simulate import orbitcatalog
    from shutterline.solarsystem import mpcorbits

    work = CACHE / f"n{args.n}"
    catalog = work / "catalog.npz"
    start = time.perf_counter()
    mpcorbits.write_catalog(catalog, orbitcatalog.synthesize(args.n, 0, EPOCH))
    record: dict[str, Any] = {"n": args.n, "synthesize_s": time.perf_counter() - start}
    record["wall_s"] = {}
    for jobs in args.workers:
        record["wall_s"][str(jobs)] = _precompute(catalog, work / "pieces", jobs)
        print(f"precompute, {jobs} worker(s): {record['wall_s'][str(jobs)]:.1f} s", flush=True)
    one = record["wall_s"][str(args.workers[0])]
    record["speedup"] = {k: one / v for k, v in record["wall_s"].items()}
    pieces = work / "pieces"
    record["dataset_bytes"] = sum(p.stat().st_size for p in pieces.iterdir())
    record["dataset_files"] = len(list(pieces.iterdir()))
    record.update(_lookups(pieces, catalog, args.detectors))
    (work / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    _picture(record, work / "precompute_workers.png")
    print(json.dumps(record, indent=1))
    print(f"record and picture in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
