"""What the analysis costs per detector, beside the prompt stages on the same detector.

One 2048 x 4096 detector of the cached pipeline night (`bench_pipeline.prepared_night`):
the prompt stages run once per repetition (ISR to spooled alerts); their products, with the
detector's reference stars, go to the analysis measures (`analysis.records.detector_record`:
PSF map, zero point, astrometry, depth, difference quality), and one 2048 x 4096 FFT
convolution is the machine's yardstick; the three interleave, so each repetition sees the
same load. Reported: medians (wall and CPU) and the analysis as a fraction of the prompt
stages and in FFT units. Reading the products back from the repository is not included.

    .venv/bin/python tests/benchmarks/bench_analysis.py [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results
import bench_pipeline

COMMAND = ".venv/bin/python tests/benchmarks/bench_analysis.py"


def _prompt(inputs: Any, root: Path) -> tuple[float, Any]:
    """One pass of the prompt stages; (stage seconds, outputs)."""
    from shutterline.pipeline import detector
    from shutterline.telemetry import stages

    rec = stages.StageRecorder()
    with tempfile.TemporaryDirectory() as tmp:
        out, _ = detector.process_detector(inputs, bench_pipeline._settings(root, tmp), rec)
    return sum(rec.seconds.values()), out


def _analysis(inputs: Any, out: Any) -> tuple[float, float, dict[str, Any]]:
    """The analysis measures of one detector; (wall, CPU, record)."""
    from shutterline.analysis import records

    products = records.DetectorProducts(
        inputs.visit, inputs.detector, out.calexp, out.src, out.difference, out.dia_sources,
        inputs.refcat,
    )  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    record = records.detector_record(products, None)
    return time.perf_counter() - t0, time.process_time() - c0, record


def main() -> None:
    """Measure and print medians and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repetition")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    from shutterline.butler import inputs as butler_inputs
    from shutterline.butler import repo

    root, entry = bench_pipeline.prepared_night()
    butler = repo.open_repo(str(root))
    inputs = butler_inputs.load_detector_inputs(butler, entry["visit"], entry["detectors"][0])
    _prompt(inputs, root)  # warm-up: imports, numba compilation
    prompts, walls, cpus, ffts = [], [], [], []
    record: dict[str, Any] = {}
    for _ in range(repeat):
        seconds, out = _prompt(inputs, root)
        prompts.append(seconds)
        wall, cpu, record = _analysis(inputs, out)
        walls.append(wall)
        cpus.append(cpu)
        ffts.append(bench_pipeline.fft_convolution_seconds(1))
    prompt, wall, cpu, fft = (statistics.median(v) for v in (prompts, walls, cpus, ffts))
    print(f"prompt stages {prompt:.2f} s; analysis {wall:.2f} s wall, {cpu:.2f} s CPU; "
          f"one FFT {fft:.3f} s (medians of {repeat})")  # fmt: skip
    print(f"analysis / prompt stages: {wall / prompt:.3f}; analysis: {wall / fft:.1f} x FFT")
    print(f"values: FWHM {record.get('fwhm')} arcsec, zero point {record.get('zeroPoint')}, "
          f"m5 {record.get('limitingMag')}, {record.get('nPsfStars')} PSF stars")  # fmt: skip
    rows = [
        ("analysis of one 2048x4096 detector, s", f"{wall:.2f}", f"stages {prompt:.2f} s", COMMAND),
        ("analysis / prompt stages", f"{wall / prompt:.3f}", "same run", COMMAND),
        ("analysis, x FFT", f"{wall / fft:.1f}", f"FFT {fft:.3f} s", COMMAND),
    ]
    _results.record("bench_analysis", rows)


if __name__ == "__main__":
    main()
