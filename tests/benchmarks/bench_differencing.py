"""Benchmark: template warp, PSF matching + subtraction, DIA detection + measurement, one core.

Run from the project root: ``.venv/bin/python tests/benchmarks/bench_differencing.py
[--repeat N]``. Builds seeded synthetic 2048 x 4096 pairs (``tests/unit/differencing/synth``:
a star field, a 0.2 arcsec/pixel template coadd in two overlapping patches, a science image in
electrons with sources injected at SNR 10 on a grid) for a sharper and a blurrier template.
Prints per-step medians beside the median of one 2048 x 4096 float32 FFT convolution
(``scipy.signal.fftconvolve`` with a 31 x 31 kernel) measured in the same run, with ratios,
and the quality figures the stage is held to: difference noise over propagated noise, false
detections (no injection within 2 pixels), completeness, and the flux pull distribution. A
last table compares warp kernels (speed against static-star residuals).
"""

from __future__ import annotations

import os

# One core, as a pod gets: set before numpy loads its thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy import signal  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.unit.differencing import synth  # noqa: E402

from shutterline.differencing import dia, subtract, warp  # noqa: E402

SHAPE = (4096, 2048)
CASES = {"template sharper (1.0 vs 0.7 arcsec)": (1.0, 0.7, 11.0),
         "template blurrier (0.9 vs 1.4 arcsec)": (0.9, 1.4, 12.0)}  # fmt: skip


#: CPU seconds of the last `_median_time` call (median), printed beside the wall time: on a
#: shared 2-core machine the wall time also counts other processes' turns.
CPU: dict[str, float] = {}


def _median_time(fn: Callable[[], Any], repeat: int, label: str = "") -> tuple[float, Any]:
    times, cpu, out = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU[label] = statistics.median(cpu)
    return statistics.median(times), out


def _inputs(seed: int, fwhm_sci: float, fwhm_tpl: float, snr: float) -> tuple[Any, list[Any]]:
    """The science pair with injections, and the raw template patches (to time the warp)."""
    pair = synth.make_pair(seed, fwhm_sci, fwhm_tpl, shape=SHAPE, spacing=256, snr=snr)
    rng = np.random.default_rng(seed)
    field = synth.make_field(rng, SHAPE, n_stars=int(600 * SHAPE[0] * SHAPE[1] / 1e6))
    return pair, synth.make_template_patches(rng, field, fwhm_tpl)


def _quality(pair: Any, res: Any, table: Any) -> dict[str, float]:
    d = np.hypot(np.asarray(table["x"])[:, None] - pair.x, np.asarray(table["y"])[:, None] - pair.y)
    ok = d.min(axis=1) < 2.0
    idx = d.argmin(axis=1)
    pull = (np.asarray(table["psf_flux"])[ok] - pair.flux[idx[ok]]) / np.asarray(
        table["psf_flux_err"]
    )[ok]
    return {
        "noise_ratio": res.metrics["noise_ratio"],
        "kernel_sum": res.metrics["kernel_sum"],
        "false": float((~ok).sum()),
        "completeness": len(set(idx[ok].tolist())) / pair.x.size,
        "pull_mean": float(np.mean(pull)),
        "pull_std": float(np.std(pull)),
        "median_snr": float(np.median(np.asarray(table["snr"])[ok])),
    }


def _run_case(name: str, params: tuple[float, float, float], repeat: int, base: float) -> None:
    fwhm_sci, fwhm_tpl, snr = params
    pair, patches = _inputs(7, fwhm_sci, fwhm_tpl, snr)
    wcs, shape = pair.science.wcs, pair.science.shape
    t_warp, _ = _median_time(lambda: warp.warp_patches(patches, wcs, shape), repeat, "warp")
    t_sub, res = _median_time(
        lambda: subtract.subtract(pair.science, pair.template), repeat, "subtract"
    )
    t_dia, table = _median_time(
        lambda: dia.detect_and_measure(res.difference, pair.science, pair.template), repeat, "dia"
    )
    total = t_warp + t_sub + t_dia
    CPU["total"] = CPU["warp"] + CPU["subtract"] + CPU["dia"]
    cpu_base = CPU["base"]
    print(f"\n{name}: convolved the {res.convolved}, {len(table)} DIA sources")
    print(f"  {'step':<22s} {'wall s':>7s}  {'x FFT':>6s}  {'CPU s':>6s}  {'x FFT':>6s}")
    for step, t, c in (("warp (2 patches)", t_warp, CPU["warp"]),
                       ("match + subtract", t_sub, CPU["subtract"]),
                       ("detect + measure", t_dia, CPU["dia"]),
                       ("total", total, CPU["total"])):  # fmt: skip
        print(f"  {step:<22s} {t:7.3f}  {t / base:6.2f}  {c:6.3f}  {c / cpu_base:6.2f}")
    q = _quality(pair, res, table)
    print(
        f"  noise/propagated {q['noise_ratio']:.3f}  kernel sum {q['kernel_sum']:.4f}  "
        f"false {q['false']:.0f}  completeness {q['completeness']:.3f}  "
        f"pull {q['pull_mean']:+.2f} +- {q['pull_std']:.2f}  median SNR {q['median_snr']:.1f}"
    )


def _warp_kernels(repeat: int, base: float) -> None:
    """Warp kernels: time, and what the static stars leave after subtraction."""
    pair, patches = _inputs(8, 1.0, 0.7, 10.0)
    print("\nwarp kernel   time (s)  x FFT  noise/propagated  false detections")
    wcs, shape = pair.science.wcs, pair.science.shape
    for kernel in ("lanczos3", "lanczos2", "bilinear"):
        t, tpl = _median_time(
            functools.partial(warp.warp_patches, patches, wcs, shape, kernel=kernel), repeat
        )
        # Same science image; the template warped with this kernel (injections are science-only).
        res = subtract.subtract(pair.science, tpl)
        table = dia.detect_and_measure(res.difference, pair.science, tpl)
        q = _quality(pair, res, table)
        print(
            f"{kernel:<12s} {t:8.3f}  {t / base:5.2f}  {q['noise_ratio']:16.3f}  {q['false']:16.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Print medians per step, the FFT baseline and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    image = rng.normal(size=SHAPE).astype(np.float32)
    kernel = rng.normal(size=(31, 31)).astype(np.float32)
    base, _ = _median_time(
        lambda: signal.fftconvolve(image, kernel, mode="same"), args.repeat, "base"
    )
    print(
        "baseline: one 2048 x 4096 float32 FFT convolution (fftconvolve 31x31): "
        f"{base:.3f} s wall, {CPU['base']:.3f} s CPU"
    )
    # Warm-up: the compiled resampler loads (or compiles) on first use.
    warm = synth.make_pair(1, 1.0, 0.7, shape=(256, 256), spacing=10_000)
    subtract.subtract(warm.science, warm.template)
    for name, params in CASES.items():
        _run_case(name, params, args.repeat, base)
    _warp_kernels(max(args.repeat // 2, 1), base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
