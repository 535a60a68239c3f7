"""Per-detector latency: the whole pipeline on one 2048 x 4096 detector, on one core.

Instrument signature removal to spooled alerts (pre-cache excluded), median over repeats
after one warm-up run (imports, numba compilation), with the median per stage, beside one
2048 x 4096 float32 FFT convolution measured in the same run. Target: under 3 s, i.e. about
20 x one FFT convolution on the design's reference machine.

    .venv/bin/python tests/benchmarks/bench_pipeline.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import signal

CACHE = Path.home() / ".cache" / "shutterline" / "bench" / "pipeline-night-v1"


def fft_convolution_seconds(repeat: int) -> float:
    """Median time of one 2048 x 4096 float32 FFT convolution with a 31 x 31 kernel."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4096, 2048)).astype(np.float32)
    kernel = rng.random((31, 31)).astype(np.float32)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        signal.fftconvolve(image, kernel, mode="same")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def prepared_night() -> tuple[Path, dict]:
    """A one-field, one-detector night with calibrations and templates (cached)."""
    import yaml

    from shutterline.demo import night

    if not (CACHE / "ready").exists():
        cfg = night.DemoConfig(workdir=CACHE, seed=3, fields=1, detectors=1, visits=2, jobs=2)
        night.prepare_repository(cfg)
        (CACHE / "ready").write_text("ok")
    schedule = yaml.safe_load((CACHE / "night" / "schedule.yaml").read_text())["visits"]
    return CACHE / "repo", schedule[0]


def run_once(inputs: object, settings: object) -> tuple[float, dict[str, float], int]:
    """One pass from ISR to spooled alerts; (wall seconds, seconds per stage, alerts)."""
    from shutterline.pipeline import detector
    from shutterline.telemetry import stages

    rec = stages.StageRecorder()
    t0 = time.perf_counter()
    _, paths = detector.process_detector(inputs, settings, rec)
    return time.perf_counter() - t0, rec.seconds, len(paths)


def main() -> None:
    """Measure and print medians and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from shutterline.association import apdb
    from shutterline.butler import inputs as butler_inputs
    from shutterline.butler import repo
    from shutterline.pipeline import settings as settings_mod

    root, entry = prepared_night()
    butler = repo.open_repo(str(root))
    inputs = butler_inputs.load_detector_inputs(butler, entry["visit"], entry["detectors"][0])
    walls, per_stage, alerts = [], [], 0
    for i in range(args.repeat + 1):
        with tempfile.TemporaryDirectory() as tmp:
            settings = settings_mod.Settings(
                repo=str(root),
                apdb=f"{tmp}/apdb.sqlite3",
                spool=Path(tmp) / "spool",
                workdir=Path(tmp),
                direct=True,
            )
            apdb.open_apdb(settings.apdb, create=True)
            wall, stages_s, alerts = run_once(inputs, settings)
        if i > 0:  # the first pass pays imports and numba compilation
            walls.append(wall)
            per_stage.append(stages_s)
    fft = fft_convolution_seconds(max(3, args.repeat))
    median = statistics.median(walls)
    print(f"one 2048x4096 FFT convolution: {fft:.3f} s (median)")
    print(
        f"whole pipeline, ISR to spooled alerts: {median:.3f} s median over {len(walls)} "
        f"runs ({alerts} alerts) = {median / fft:.1f} x FFT convolution (target <= 20 x, < 3 s)"
    )
    for name in per_stage[0]:
        s = statistics.median(p[name] for p in per_stage)
        print(f"  {name:<14} {s:7.3f} s  {s / fft:5.2f} x FFT")


if __name__ == "__main__":
    main()
