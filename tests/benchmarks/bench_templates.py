"""Benchmark: the template step's coadd, and a small night's template build, against the
reference arithmetic measured in the same run.

Reference: the coadd as before this pass, over the whole patch, with `images.stats.nanmedian`
(numpy sort) for its medians and ``scipy.ndimage.uniform_filter`` for its box means (now the
box the inputs cover, and the compiled `templates._median`, `templates._box`); candidate: the
code as it is. The two interleave
(one of each per repetition, so both see the same load); medians of CPU seconds, the ratio,
and whether the outputs are the same bytes.

1. ``coadd``: one 1050 x 1050 patch of 3 cropped inputs (stars, noise, a trail, saturated,
   cosmic-ray and no-data pixels; about what a demo patch holds).
2. ``build`` (not with ``--quick``): `templates.build.build_templates` on a simulated one-field
   night of 1024 x 2048 detectors (2 detectors, 3 template visits), one process, CPU seconds;
   the stored templates' planes must hash the same in every run, reference and candidate.
3. ``store`` (not with ``--quick``): the same build with 2 worker processes, wall and CPU
   (parent and workers); reference: the store as before this pass (each patch's coadd
   pickled back to the parent, which wrote it and committed it alone); candidate: each
   worker writes its patches, one ingest stores them all. Same hash check.

    .venv/bin/python tests/benchmarks/bench_templates.py [--repeat 5] [--quick]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, as a pod gets

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "pipeline-image"), str(Path(__file__).resolve().parent)]
import _results  # noqa: E402

from shutterline.images import Exposure, MaskBit, stats  # noqa: E402
from shutterline.templates import _box, _median, coadd  # noqa: E402

COMMAND = ".venv/bin/python tests/benchmarks/bench_templates.py"
PATCH = (1050, 1050)


@contextlib.contextmanager
def reference() -> Iterator[None]:
    """The coadd's kernels swapped for the numpy/scipy arithmetic they replaced."""
    saved = _median.nanmedian_inputs, _box.box_mean, coadd._union
    coadd._union = lambda warps, shape: (0, 0, *shape)  # the whole patch, as before
    _median.nanmedian_inputs = lambda values: stats.nanmedian(values, axis=0)
    _box.box_mean = lambda plane, sy, sx: ndimage.uniform_filter(  # type: ignore[assignment]
        plane, (sy, sx), mode="constant"
    )
    try:
        yield
    finally:
        _median.nanmedian_inputs, _box.box_mean, coadd._union = saved


def _stars(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, flux: np.ndarray, fwhm: float
) -> np.ndarray:
    sigma = fwhm / 2.3548
    out = np.zeros(shape)
    inside = (x > 0) & (x < shape[1] - 1) & (y > 0) & (y < shape[0] - 1)
    for xi, yi, fi in zip(x[inside], y[inside], flux[inside], strict=True):
        r0, c0 = int(yi) - 12, int(xi) - 12
        yy, xx = np.mgrid[max(r0, 0) : min(r0 + 25, shape[0]), max(c0, 0) : min(c0 + 25, shape[1])]
        g = np.exp(-((xx - xi) ** 2 + (yy - yi) ** 2) / (2 * sigma**2))
        out[yy, xx] += fi * g / (2 * np.pi * sigma**2)
    return out


def patch_inputs(seed: int = 0, n: int = 3) -> list[coadd.Warp]:
    """``n`` cropped warps of one patch in nJy: shared stars, each its own seeing and noise."""
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, PATCH[1], 300), rng.uniform(0, PATCH[0], 300)
    flux = rng.lognormal(10, 1.5, 300)
    warps = []
    for i in range(n):
        y0, x0 = (0, 0) if i == 0 else (int(rng.integers(0, 200)), int(rng.integers(0, 200)))
        ny, nx = (
            PATCH[0] - y0 - int(rng.integers(0, 100)),
            PATCH[1] - x0 - int(rng.integers(0, 100)),
        )
        image = _stars((ny, nx), x - x0, y - y0, flux, 3.0 + i) + rng.normal(0, 50, (ny, nx))
        if i == 1:
            image[300:303, :] += 2000.0  # a satellite trail in one input
        mask = np.zeros((ny, nx), np.int32)
        mask[:5] = int(MaskBit.NO_DATA)
        mask[500:510, 100:110] |= int(MaskBit.SAT)
        mask[rng.integers(0, ny, 50), rng.integers(0, nx, 50)] |= int(MaskBit.CR)
        exp = Exposure(
            image.astype(np.float32),
            mask,
            np.full((ny, nx), 2500.0 * (1 + 0.1 * i), np.float32),
            psf=np.full((21, 21), 1 / 441, np.float32),
            metadata={"NJY_PER_UNIT": 1.0},
        )
        warps.append(coadd.Warp(exp, y0, x0))
    return warps


def _cpu(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.process_time()
    out = func()
    return time.process_time() - start, out


def _same(a: Exposure, b: Exposure) -> bool:
    planes = all(
        np.array_equal(p, q)
        for p, q in zip((a.image, a.variance, a.mask), (b.image, b.variance, b.mask), strict=True)
    )
    psf = (a.psf is None and b.psf is None) or np.array_equal(a.psf, b.psf)  # type: ignore[arg-type]
    return planes and psf and a.metadata == b.metadata


def bench_coadd(repeat: int) -> tuple[float, float, bool]:
    """Medians of reference and candidate CPU seconds for one patch, and byte identity."""
    warps = patch_inputs()
    ref_t, new_t, same = [], [], True
    coadd.coadd(warps, PATCH)  # compile / load the kernels outside the timing
    for _ in range(repeat):
        with reference():
            t, ref = _cpu(lambda: coadd.coadd(warps, PATCH))
        ref_t.append(t)
        t, new = _cpu(lambda: coadd.coadd(warps, PATCH))
        new_t.append(t)
        same &= _same(ref, new)
    return statistics.median(ref_t), statistics.median(new_t), same


def bench_build(repeat: int, workdir: Path) -> tuple[float, float, int]:
    """Medians of reference and candidate CPU seconds of a small night's template build."""
    from shutterline.butler import ingest, repo
    from shutterline.calibs import build as calib_build
    from shutterline.simulate import simulate_night
    from shutterline.templates import build

    simulate_night(workdir / "sim", seed=8, visits=1, detectors=2, fields=1, nx=1024, ny=2048,
                   template_visits=3, n_bias=3, n_flat=3)  # fmt: skip
    butler = repo.create_repo(str(workdir / "repo"))
    ingest.ingest_raws(butler, [workdir / "sim" / "raw"], progress=False)
    ingest.ingest_refcat(butler, [workdir / "sim" / "refcat" / "refcat.fits"], progress=False)
    calib_build.build_calibs(butler, progress=False)

    digests: dict[str, set[str]] = {"ref": set(), "new": set()}

    def run(which: str, times: list[float]) -> int:
        start = time.process_time()  # one process: CPU seconds, less coloured by the load
        result = build.build_templates(butler, progress=False, replace=True)
        times.append(time.process_time() - start)
        digest = hashlib.sha256()
        for key in sorted(result.templates):  # the stored coadds' planes, outside the timing
            exp = butler.get(result.templates[key])
            for plane in (exp.image, exp.variance, exp.mask):
                digest.update(np.ascontiguousarray(plane).tobytes())
        digests[which].add(digest.hexdigest())
        return len(result.templates)

    ref_t: list[float] = []
    new_t: list[float] = []
    patches = 0
    for _ in range(repeat):
        with reference():
            patches = run("ref", ref_t)
        patches = run("new", new_t)
    if len(digests["ref"] | digests["new"]) != 1:
        raise SystemExit(f"the stored templates' bytes differ between runs: {digests}")
    print("template build runs, CPU s: reference", [round(t, 2) for t in ref_t],
          "now", [round(t, 2) for t in new_t])  # fmt: skip
    return statistics.median(ref_t), statistics.median(new_t), patches


def _coadd_only(key: Any, inputs: list[Any], skymap: Any) -> tuple[Any, list[Any], Exposure]:
    out = coadd.coadd([w for _, _, w in inputs], skymap.patch(*key[:2]).shape, None)
    return key, [(e, m) for e, m, _ in inputs], out


def _store_one_by_one(
    butler: Any, collected: Any, skymap: Any, config: Any, jobs: int, result: Any, progress: bool
) -> None:
    """`build._store_all` as it was before: coadds sent back, each written and committed by
    the parent (`certify.put_template`), at most ``jobs`` in flight."""
    import collections
    import concurrent.futures

    from shutterline.butler import certify

    def coadds() -> Iterator[tuple[Any, list[Any], Exposure]]:
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
            pending: collections.deque[Any] = collections.deque()
            for key in sorted(collected):
                pending.append(pool.submit(_coadd_only, key, collected.pop(key), skymap))
                if len(pending) >= jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    for (tract, patch, band), inputs, out in coadds():
        out.wcs = skymap.patch(tract, patch).wcs
        visits = sorted({e for e, _ in inputs})
        mjd = float(np.mean([m for _, m in inputs]))
        inputs_card = ",".join(map(str, visits))[:68]
        out.metadata.update({"BAND": band, "TRACT": tract, "PATCH": patch, "MJD": mjd,
                             "INPUTS": inputs_card, "NVISIT": len(visits)})  # fmt: skip
        result.inputs[(tract, patch, band)] = visits
        ref = certify.put_template(butler, out, tract, patch, band, skymap)
        result.templates[(tract, patch, band)] = ref


def _digest(butler: Any, templates: dict[Any, Any]) -> str:
    digest = hashlib.sha256()
    for key in sorted(templates):  # the stored coadds' planes and headers
        exp = butler.get(templates[key])
        for plane in (exp.image, exp.variance, exp.mask):
            digest.update(np.ascontiguousarray(plane).tobytes())
        digest.update(repr(sorted(exp.metadata.items())).encode())
    return digest.hexdigest()


def bench_store(repeat: int, workdir: Path) -> dict[str, tuple[float, float]]:
    """Medians of (wall, CPU of parent + workers) of the 2-process build, reference and new,
    on the night `bench_build` made in ``workdir``."""
    import resource

    from shutterline.butler import repo
    from shutterline.templates import build

    root = str(workdir / "repo")
    butler = repo.open_repo(root, writeable=True)
    times: dict[str, list[tuple[float, float]]] = {"ref": [], "new": []}
    digests: set[str] = set()
    saved = build._store_all

    def cpu() -> float:
        self_, kids = (
            resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        )
        return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime

    for _ in range(repeat):
        for which in ("ref", "new"):
            build._store_all = _store_one_by_one if which == "ref" else saved
            try:
                wall, c0 = time.perf_counter(), cpu()
                result = build.build_templates(
                    butler, jobs=2, repo_uri=root, progress=False, replace=True
                )
                times[which].append((time.perf_counter() - wall, cpu() - c0))
            finally:
                build._store_all = saved
            digests.add(_digest(butler, result.templates))
    if len(digests) != 1:
        raise SystemExit(f"the stored templates differ between the two stores: {digests}")
    print("2-process template builds, (wall, CPU) s: reference",
          [(round(w, 1), round(c, 1)) for w, c in times["ref"]],
          "now", [(round(w, 1), round(c, 1)) for w, c in times["new"]])  # fmt: skip
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
            for k, v in times.items()}  # fmt: skip


def main() -> None:
    """Print the medians and ratios, and record them for ``make bench``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 repetitions, coadd only")
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    ref, new, same = bench_coadd(repeat)
    print(f"coadd of a {PATCH[0]} x {PATCH[1]} patch of 3 inputs, CPU, median of {repeat}: "
          f"reference {ref:.3f} s, now {new:.3f} s, ratio {new / ref:.2f}; "
          f"same bytes: {same}")  # fmt: skip
    rows = [("template coadd, 1050x1050 patch of 3 inputs, CPU s", f"{new:.3f}",
             f"reference {ref:.3f} s (x{new / ref:.2f}), same bytes {same}", COMMAND)]  # fmt: skip
    if not args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            bref, bnew, patches = bench_build(min(repeat, 3), Path(tmp))
            store = bench_store(min(repeat, 3), Path(tmp))
        print(f"template build, 1-field 1024x2048 night (6 detectors, {patches} patches), "
              f"CPU: reference {bref:.2f} s, now {bnew:.2f} s, x{bnew / bref:.2f}")  # fmt: skip
        rows.append(("template build, small night, CPU s", f"{bnew:.2f}",
                     f"reference {bref:.2f} s (x{bnew / bref:.2f})", COMMAND))  # fmt: skip
        (rw, rc), (nw, nc) = store["ref"], store["new"]
        print(f"template build, same night, 2 processes: wall {rw:.1f} -> {nw:.1f} s "
              f"(x{nw / rw:.2f}), CPU {rc:.1f} -> {nc:.1f} s (x{nc / rc:.2f})")  # fmt: skip
        rows.append(("template build, small night, 2 processes, wall s", f"{nw:.1f}",
                     f"store one by one {rw:.1f} s (x{nw / rw:.2f}); CPU x{nc / rc:.2f}",
                     COMMAND))  # fmt: skip
    if not same:
        raise SystemExit("the coadd's bytes changed against the reference arithmetic")
    _results.record("bench_templates", rows)


if __name__ == "__main__":
    main()
