"""Cosmic-ray detection against the simulator's truth on a whole night: recall, stars' cores.

Simulates a night (one process, so the simulator's cosmic rays can be recorded: every pixel
`add_cosmic_rays` adds charge to), builds master biases and flats from its calibration
exposures, and runs ISR on every science and template raw twice: with the present
`cosmicrays.repair_cosmic_rays` and with the one of ``--reference`` (a git revision). For each
it counts:

- **recall**: injected hits (tracks) with at least one pixel flagged ``CR``, of those with a
  pixel ISR could test (not ``BAD``, ``SAT`` or ``NO_DATA``); and the same for pixels;
- **on star cores**: ``CR`` pixels within ``--core-fwhm`` FWHM of a true star (static or
  variable, not extended; the truth table's positions) that are neither a cosmic-ray pixel
  nor beside one: a star's own light flagged, the defect this measures; and the stars with any;
- the CPU seconds of the cosmic-ray step.

    .venv/bin/python tests/benchmarks/bench_cr_truth.py --seed 13 --reference HEAD~1
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
MODULE = "pipeline-image/shutterline/isr/cosmicrays.py"
_UNTESTABLE = 0  # set in main from MaskBit: SAT | BAD | NO_DATA


def _recording_simulation(out: Path, seed: int, settings: dict[str, Any]) -> tuple[Any, dict]:
    """Simulate in one process; beside it ``{(expnum, ccdnum): [hit labels, count, seeing]}``."""
    from shutterline.simulate import detector, exposure, simulate_night

    hits: dict[tuple[int, int], list[np.ndarray]] = {}
    current: list[tuple[int, int, float]] = []
    real_add, real_exposure = detector.add_cosmic_rays, exposure.simulate_exposure

    def add(image: np.ndarray, rng: np.random.Generator, mean_count: float) -> int:
        before = image.copy()
        n = real_add(image, rng, mean_count)
        changed = image != before
        labels, count = ndimage.label(changed, np.ones((3, 3), bool))
        hits[current[-1][:2]] = [labels, count, current[-1][2]]
        return n

    def simulate(cfg: Any, plan: Any, model: Any, *args: Any) -> Any:
        current.append((int(plan.expnum), int(model.ccdnum), float(plan.seeing_arcsec)))
        return real_exposure(cfg, plan, model, *args)

    detector.add_cosmic_rays, exposure.simulate_exposure = add, simulate
    try:
        night = simulate_night(out, seed=seed, jobs=1, **settings)
    finally:
        detector.add_cosmic_rays, exposure.simulate_exposure = real_add, real_exposure
    return night, hits


def _masters(night: Any) -> tuple[dict[int, Any], dict[tuple[int, str], Any]]:
    from shutterline.calibs import masters
    from shutterline.isr import assemble_raw

    def assembled(expnums: list[int], ccd: int) -> list[Any]:
        out = []
        for e in expnums:
            with fits.open(_raw(night.out, e, ccd)) as hdul:
                out.append(assemble_raw(hdul))
        return out

    bias = {c: masters.master_bias(assembled(night.bias, c)) for c in night.ccdnums}
    flat = {
        (c, b): masters.master_flat(assembled(night.flat[b], c), bias[c])
        for c in night.ccdnums
        for b in night.bands
    }
    return bias, flat


def _raw(out: Path, expnum: int, ccd: int) -> Path:
    for path in sorted((out / "raw" / str(expnum)).glob("*.fits")):
        if int(fits.getval(path, "CCDNUM", 1)) == ccd:
            return path
    raise FileNotFoundError(f"no raw for exposure {expnum} detector {ccd}")


def _load_reference(rev: str) -> Callable[..., int]:
    text = subprocess.run(
        ["git", "show", f"{rev}:{MODULE}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "reference_cosmicrays.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("reference_cosmicrays", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.repair_cosmic_rays  # type: ignore[no-any-return]


def _star_core_pixels(stars: Table, shape: tuple[int, int], radius: float) -> np.ndarray:
    """Label image: pixel -> 1 + row index of the star whose core it is in (0: none)."""
    labels = np.zeros(shape, np.int32)
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    for i, (x, y) in enumerate(zip(stars["x"], stars["y"], strict=True)):
        yy, xx = np.round(y).astype(int) + dy, np.round(x).astype(int) + dx
        keep = (
            ((yy - y) ** 2 + (xx - x) ** 2 <= radius**2)
            & (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
        )  # fmt: skip
        labels[yy[keep], xx[keep]] = i + 1
    return labels


def _score(mask: np.ndarray, hit: list, cores: np.ndarray) -> dict[str, int]:
    from shutterline.images import MaskBit

    labels, count, _ = hit
    cr = (mask & MaskBit.CR) != 0
    testable = (mask & _UNTESTABLE) == 0
    ids = np.arange(1, count + 1)
    has_testable = ndimage.maximum(testable & (labels > 0), labels, ids) if count else []
    found = ndimage.maximum(cr & (labels > 0), labels, ids) if count else []
    near = ndimage.binary_dilation(labels > 0, np.ones((3, 3), bool))
    on_core = cr & ~near & (cores > 0)
    pix = (labels > 0) & testable
    return {
        "hits": int(np.sum(has_testable)),
        "hits_found": int(np.sum(np.asarray(found)[np.asarray(has_testable, bool)])),
        "pixels": int(pix.sum()),
        "pixels_found": int((pix & cr).sum()),
        "core_px": int(on_core.sum()),
        "stars": len(np.unique(cores[on_core])),
        "flagged": int(cr.sum()),
    }


def _run_isr(path: Path, bias: Any, flat: Any, repair: Callable[..., int]) -> tuple[Any, float]:
    from shutterline.isr import cosmicrays, run_isr

    spent = [0.0]
    real = cosmicrays.repair_cosmic_rays

    def timed(*args: Any) -> int:
        start = time.process_time()
        n = repair(*args)
        spent[0] += time.process_time() - start
        return n

    cosmicrays.repair_cosmic_rays = timed
    try:
        with fits.open(path) as hdul:
            return run_isr(hdul, bias, flat), spent[0]
    finally:
        cosmicrays.repair_cosmic_rays = real


def main() -> int:
    """Print recall and star-core counts for the present detector and the reference."""
    global _UNTESTABLE
    from shutterline.camera import layout
    from shutterline.images import MaskBit
    from shutterline.isr import cosmicrays

    _UNTESTABLE = int(MaskBit.SAT | MaskBit.BAD | MaskBit.NO_DATA)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--reference", default="HEAD~1", help="git revision of cosmicrays.py")
    parser.add_argument("--fields", type=int, default=3)
    parser.add_argument("--core-fwhm", type=float, default=1.0)
    parser.add_argument("--set", nargs="*", default=[], help="SimConfig overrides key=value")
    args = parser.parse_args()
    settings: dict[str, Any] = {"fields": args.fields, "detectors": 2, "visits": 4,
                                "template_visits": 3, "nx": 2048, "ny": 4096}  # fmt: skip
    for item in args.set:
        key, value = item.split("=")
        settings[key] = int(value) if value.isdigit() else float(value)
    arms = {"present": cosmicrays.repair_cosmic_rays, "reference": _load_reference(args.reference)}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        night, hits = _recording_simulation(Path(tmp) / "night", args.seed, settings)
        print(f"simulated in {time.time() - start:.0f} s; masters...", flush=True)
        bias, flat = _masters(night)
        truth = Table.read(Path(tmp) / "night" / "truth" / "sources.csv", format="ascii.csv")
        stars = truth[np.isin(truth["kind"], ["static", "variable"]) & (truth["extended"] == 0)]
        totals = {arm: dict.fromkeys(("hits", "hits_found", "pixels", "pixels_found",
                                      "core_px", "stars", "flagged", "cpu"), 0.0)
                  for arm in arms}  # fmt: skip
        for expnum in night.template + night.science:
            for ccd in night.ccdnums:
                path = _raw(night.out, expnum, ccd)
                mine = stars[(stars["visit"] == expnum) & (stars["detector"] == ccd)]
                for arm, repair in arms.items():
                    exp, cpu = _run_isr(path, bias[ccd], flat[(ccd, _band(path))], repair)
                    fwhm = hits[(expnum, ccd)][2] / layout.CAMERA.pixel_scale_arcsec
                    cores = _star_core_pixels(mine, exp.shape, args.core_fwhm * fwhm)
                    for key, value in _score(exp.mask, hits[(expnum, ccd)], cores).items():
                        totals[arm][key] += value
                    totals[arm]["cpu"] += cpu
    _print(args, settings, totals)
    return 0


def _band(path: Path) -> str:
    from shutterline.isr import header

    with fits.open(path) as hdul:
        return header.require_band(hdul[0].header, str(path))


def _print(args: Any, settings: dict[str, Any], totals: dict[str, dict[str, float]]) -> None:
    print(f"seed {args.seed}, {settings}, star core = {args.core_fwhm} FWHM")
    print(f"{'':10s} {'hits found':>18s} {'pixels found':>22s} {'CR px on star cores':>20s} "
          f"{'stars':>6s} {'CR px':>8s} {'CR cpu s':>9s}")  # fmt: skip
    for arm, t in totals.items():
        print(
            f"{arm:10s} {int(t['hits_found']):7d}/{int(t['hits']):<6d} "
            f"({t['hits_found'] / max(t['hits'], 1):.4f}) "
            f"{int(t['pixels_found']):8d}/{int(t['pixels']):<7d} "
            f"({t['pixels_found'] / max(t['pixels'], 1):.4f}) {int(t['core_px']):12d} "
            f"{int(t['stars']):6d} {int(t['flagged']):8d} {t['cpu']:9.1f}"
        )


if __name__ == "__main__":
    sys.exit(main())
