"""Pre-cache of one detector's inputs from an S3 + PostgreSQL central repository.

Run: ``.venv/bin/python tests/benchmarks/bench_precache.py [--detectors 16] [--repeat 3]``.

Starts the test bed's MinIO and PostgreSQL on loopback, builds a central repository (S3
datastore, PostgreSQL registry) holding one visit of ``--detectors`` full-size detectors
(raw 2148 x 4096 uint16, master bias and flat 2048 x 4096 Exposures, template patches of
the sky map overlapping each footprint plus 60 arcsec, htm7 reference shards, orbits), then:

1. one detector, ``--repeat`` times: ``precache_detector`` split into registry queries,
   transfer and checksum verification, beside a plain parallel boto3 download (same
   objects, same server, same thread count, same run; alternating order) and the ratio of
   throughputs (target >= 0.8);
2. all ``--detectors`` at once, one process per detector as pods would be, against the one
   registry: wall time from a common start, per-process query and transfer medians, and the
   same with plain boto3 processes.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the sys.path set-up that makes tests/ importable)
import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np
from astropy.table import Table
from lsst.daf.butler import Butler
from tests.testbed import postgres, s3
from tests.unit.butler.rawfiles import write_raw

from shutterline.butler import certify, ingest, names, precache, repo, selection, skymaps, storage
from shutterline.camera import CAMERA
from shutterline.images import Exposure
from shutterline.skymap import SKYMAP

VISIT, MJD, RA, DEC = 5000, 61207.1, 150.0, 2.0


def _exposure(shape: tuple[int, int], rng: np.random.Generator) -> Exposure:
    image = rng.standard_normal(shape, dtype=np.float32)
    return Exposure(image, np.zeros(shape, np.int32), np.abs(image) + 1.0)


def _central_detectors(n: int) -> list[int]:
    specs = sorted(CAMERA.detectors, key=lambda d: d.offset_x**2 + d.offset_y**2)
    return [d.ccdnum for d in specs[:n]]


def build_central(root: str, registry: str, detectors: list[int], workdir: Path) -> None:
    """Fill the central repository with one visit's inputs for ``detectors``."""
    rng = np.random.default_rng(7)
    butler = repo.create_repo(root, registry_url=registry)
    _add_raws_and_calibs(butler, detectors, workdir, rng)
    corners = [
        selection.region_corners(r.region)
        for r in butler.query_dimension_records("visit_detector_region", explain=False)
    ]
    n_patches = _add_templates(butler, corners, rng)
    _add_catalogues(butler, corners, workdir, rng)
    print(f"central: {len(detectors)} detectors, {n_patches} template patches", flush=True)


def _add_raws_and_calibs(
    butler: Butler, detectors: list[int], workdir: Path, rng: np.random.Generator
) -> None:
    shape = (CAMERA.ny, CAMERA.nx)
    raws = [
        write_raw(workdir / f"raw_{d}.fits", VISIT, d, mjd=MJD, ra=RA, dec=DEC, shape=shape, seed=d)
        for d in detectors
    ]
    ingest.ingest_raws(butler, raws, progress=True)
    for path in raws:
        path.unlink()
    for d in detectors:
        for kind, data_id in (
            ("bias", {"detector": d}),
            ("flat", {"detector": d, "physical_filter": "r"}),
        ):
            certify.certify_calibration(
                butler, kind, _exposure(shape, rng), data_id, MJD - 10, None
            )


def _add_templates(butler: Butler, corners: list[np.ndarray], rng: np.random.Generator) -> int:
    patches = {}
    for c in corners:
        for info in SKYMAP.patches_overlapping(c[:, 0], c[:, 1], 60.0):
            patches[(info.tract, info.patch)] = info
    for tract in sorted({t for t, _ in patches}):
        skymaps.register_tract(butler, tract)
    for (tract, patch), info in sorted(patches.items()):
        data_id = {"skymap": SKYMAP.name, "tract": tract, "patch": patch, "band": "r"}
        ref = storage.make_ref(butler, names.TEMPLATE, data_id, names.TEMPLATE_COLLECTION)
        storage.put_checksummed(butler, _exposure(info.shape, rng), ref)
    return len(patches)


def _add_catalogues(
    butler: Butler, corners: list[np.ndarray], workdir: Path, rng: np.random.Generator
) -> None:
    centres = np.array([c.mean(axis=0) for c in corners])
    n = 2000
    stars = Table(
        {
            "id": np.arange(n * len(centres)),
            "ra": np.concatenate([c[0] + rng.uniform(-0.2, 0.2, n) for c in centres]),
            "dec": np.concatenate([c[1] + rng.uniform(-0.2, 0.2, n) for c in centres]),
            "r_flux": rng.uniform(1e3, 1e6, n * len(centres)),
            "r_fluxErr": rng.uniform(10, 100, n * len(centres)),
        }
    )
    stars.write(workdir / "refcat.fits", overwrite=True)
    ingest.ingest_refcat(butler, [workdir / "refcat.fits"], progress=False)
    Table({"id": np.arange(1000), "a_au": rng.uniform(2, 3, 1000)}).write(
        workdir / "orbits.csv", format="ascii.csv", overwrite=True
    )
    ingest.ingest_orbits(butler, workdir / "orbits.csv")


def object_keys(root: str, detector: int) -> list[tuple[str, str, int]]:
    """``(bucket, key, size)`` of every file one detector's pre-cache transfers."""
    butler = repo.open_repo(root)
    plan = selection.plan_detector(butler, VISIT, detector)
    out = []
    for ref in plan.refs:
        uri = butler.getURI(ref)
        out.append((uri.netloc, uri.relativeToPathRoot, uri.size()))
    return out


def boto3_download(keys: list[tuple[str, str, int]], out: Path, threads: int) -> float:
    """Plain parallel boto3 ``download_file`` of ``keys`` into ``out``; wall seconds."""
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with futures.ThreadPoolExecutor(threads) as pool:
        jobs = [
            pool.submit(client.download_file, b, k, str(out / f"{i}.bin"))
            for i, (b, k, _) in enumerate(keys)
        ]
        for job in jobs:
            job.result()
    return time.perf_counter() - t0


def _run_once(
    kind: str, root: Any, detector: int, out: Path, threads: int, keys: list[tuple[str, str, int]]
) -> Any:
    try:
        if kind == "boto3":
            return boto3_download(keys, out, threads)
        return precache.precache_detector(
            root, str(out), VISIT, detector, threads=threads, method=kind
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


def single(root: str, detector: int, tmp: Path, threads: int, repeat: int) -> None:
    """One detector, ``repeat`` times: both pre-cache methods beside boto3, order rotated."""
    keys = object_keys(root, detector)
    total = sum(size for _, _, size in keys)
    t0 = time.perf_counter()
    # Opened once, as a pod opens its central repository once at start-up.
    central = repo.open_repo(root)
    opened = time.perf_counter() - t0
    kinds = ["stream", "transfer_from", "boto3"]
    results: dict[str, list[Any]] = {k: [] for k in kinds}
    for i in range(repeat):
        for kind in kinds[i % 3 :] + kinds[: i % 3]:
            results[kind].append(_run_once(kind, central, detector, tmp / "one", threads, keys))
    med = statistics.median
    boto = med(results["boto3"])
    mb = total / 1e6
    print(
        f"\none detector: {len(keys)} datasets, {mb:.0f} MB, threads {threads}, median of {repeat}"
    )
    print(f"  open the central repository (once) {opened:7.3f} s  (not in the figures below)")
    print(f"  boto3 parallel download            {boto:7.3f} s  ({mb / boto:5.0f} MB/s)")
    for kind in ("stream", "transfer_from"):
        _print_method(kind, results[kind], boto, mb)


def _print_method(kind: str, reports: list[Any], boto: float, mb: float) -> None:
    med = statistics.median
    rows = [
        ("registry queries (central)", med(r.query_seconds for r in reports)),
        ("local repository creation", med(r.setup_seconds for r in reports)),
        ("transfer (first start, last end)", med(r.transfer_seconds for r in reports)),
        ("local registry inserts", med(r.register_seconds for r in reports)),
        ("separate checksum pass", med(r.verify_seconds for r in reports)),
    ]
    print(f"  pre-cache method={kind}:")
    for label, seconds in rows:
        print(f"    {label:32s} {seconds:7.3f} s")
    whole = med(r.wall_seconds for r in reports)
    data = med(r.transfer_seconds + r.verify_seconds for r in reports)
    print(
        f"    data movement + verification     {data:7.3f} s  ({mb / data:5.0f} MB/s)"
        f"  throughput ratio to boto3 {boto / data:.2f}"
    )
    print(
        f"    whole pre-cache (wall)           {whole:7.3f} s  ({mb / whole:5.0f} MB/s)"
        f"  throughput ratio to boto3 {boto / whole:.2f}   (target >= 0.8)"
    )


def _worker(
    kind: str,
    root: str,
    detector: int,
    out: str,
    threads: int,
    env: dict[str, str],
    barrier: Any,
    queue: Any,
) -> None:
    os.environ.update(env)
    keys = object_keys(root, detector) if kind == "boto3" else []
    central = repo.open_repo(root) if kind != "boto3" else None
    barrier.wait()
    if kind == "boto3":
        boto3_download(keys, Path(out), threads)
        queue.put((detector, time.perf_counter(), 0.0, 0.0, sum(s for _, _, s in keys)))
    else:
        assert central is not None
        r = precache.precache_detector(central, out, VISIT, detector, threads=threads, method=kind)
        queue.put((detector, time.perf_counter(), r.query_seconds, r.transfer_seconds, r.bytes))


def many(kind: str, root: str, detectors: list[int], tmp: Path, threads: int) -> float:
    """All detectors at once, one process each; returns wall seconds from the common start."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(detectors) + 1)
    queue = ctx.Queue()
    env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "S3_"))}
    procs = [
        ctx.Process(
            target=_worker,
            args=(kind, root, d, str(tmp / f"{kind}{d}"), threads, env, barrier, queue),
        )
        for d in detectors
    ]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    rows = [queue.get(timeout=1800) for _ in detectors]
    for p in procs:
        p.join()
    wall = max(r[1] for r in rows) - t0
    total = sum(r[4] for r in rows)
    mb = total / 1e6
    line = f"  {kind:13s} wall {wall:7.2f} s for {mb:6.0f} MB ({mb / wall:5.0f} MB/s)"
    if kind != "boto3":
        line += (
            f"; per process median queries {statistics.median(r[2] for r in rows):.2f} s,"
            f" transfer {statistics.median(r[3] for r in rows):.2f} s"
        )
    print(line, flush=True)
    for d in detectors:
        shutil.rmtree(tmp / f"{kind}{d}", ignore_errors=True)
    return wall


def _services(tmp: Path) -> tuple[Any, Any, Callable[[], None]]:
    minio = s3.start(tmp / "s3")
    pg = postgres.start(tmp / "pg")

    def stop() -> None:
        minio.stop()
        pg.stop()

    return minio, pg, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-precache-") as name:
        tmp = Path(name)
        minio, pg, stop = _services(tmp)
        try:
            os.environ.update(minio.env())
            bucket = minio.make_bucket("central")
            root = f"s3://{bucket}/repo"
            detectors = _central_detectors(args.detectors)
            t0 = time.perf_counter()
            build_central(root, pg.create_database("central"), detectors, tmp)
            print(f"central built in {time.perf_counter() - t0:.0f} s", flush=True)
            single(root, detectors[0], tmp, args.threads, args.repeat)
            print(
                f"\n{len(detectors)} detectors at once, one process each, threads {args.threads}:"
            )
            boto = many("boto3", root, detectors, tmp, args.threads)
            for method in ("stream", "transfer_from"):
                pre = many(method, root, detectors, tmp, args.threads)
                print(f"  wall ratio boto3 / pre-cache method={method}: {boto / pre:.2f}")
        finally:
            stop()


if __name__ == "__main__":
    main()
