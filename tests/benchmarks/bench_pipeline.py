"""Per-detector latency and memory: the whole pipeline on one 2048 x 4096 detector, one core.

Instrument signature removal to spooled alerts (pre-cache excluded), median over repeats
after one warm-up run (imports, numba compilation), with the median per stage, beside one
2048 x 4096 float32 FFT convolution measured in the same run, interleaved with the pipeline
runs so both see the same load. Target (issue 11): the stages at most 10 x one FFT
convolution. Peak memory: a fresh process loads one detector's inputs and runs it once; its
peak resident set (``VmHWM``) against the 1.5 GB target, and the largest arrays it holds.

    .venv/bin/python tests/benchmarks/bench_pipeline.py [--repeat 5]
    .venv/bin/python tests/benchmarks/bench_pipeline.py --memory     # the child, alone
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

if TYPE_CHECKING:  # the driver's types, for the signatures only
    from shutterline.butler.inputs import DetectorInputs
    from shutterline.pipeline.settings import Settings


def _night_key() -> str:
    """A digest of the code that makes the bench night and its repository (calibrations and
    templates, built through ISR): a night made before a change to any of it is made again.

    Read from this tree's `shutterline.evaluation.nights` by path, whatever ``PYTHONPATH``
    puts first: a run against another revision's package shares this tree's night.
    """
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "pipeline-image/shutterline/evaluation/nights.py"
    spec = importlib.util.spec_from_file_location("_bench_nights", path)
    assert spec is not None and spec.loader is not None
    nights = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = nights  # its dataclass looks its module up there
    spec.loader.exec_module(nights)
    return str(nights.source_digest(nights.REPOSITORY_CODE))[:10]


CACHE = Path.home() / ".cache" / "shutterline" / "bench" / f"pipeline-night-{_night_key()}"


def fft_convolution_seconds(repeat: int) -> float:
    """Median wall time of one 2048 x 4096 float32 FFT convolution with a 31 x 31 kernel."""
    return fft_convolution_times(repeat)[0]


def fft_convolution_times(repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one 2048 x 4096 float32 FFT convolution (31 x 31)."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(4096, 2048)).astype(np.float32)
    kernel = rng.random((31, 31)).astype(np.float32)
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        signal.fftconvolve(image, kernel, mode="same")
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


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


def run_once(inputs: DetectorInputs, settings: Settings) -> tuple[float, dict[str, float], int]:
    """One pass from ISR to spooled alerts; (wall seconds, seconds per stage, alerts).

    Per-stage CPU seconds (every thread) are added under ``cpu:<stage>`` keys.
    """
    from shutterline.pipeline import detector
    from shutterline.telemetry import stages

    rec = stages.StageRecorder()
    t0 = time.perf_counter()
    _, paths = detector.process_detector(inputs, settings, rec)
    seconds = dict(rec.seconds) | {f"cpu:{t.name}": t.cpu_s for t in rec.timings}
    return time.perf_counter() - t0, seconds, len(paths)


def _settings(root: Path, tmp: str) -> Settings:
    from shutterline.association import apdb
    from shutterline.pipeline import settings as settings_mod

    settings = settings_mod.Settings(
        repo=str(root),
        apdb=f"{tmp}/apdb.sqlite3",
        spool=Path(tmp) / "spool",
        workdir=Path(tmp),
        direct=True,
    )
    apdb.open_apdb(settings.apdb, create=True)
    return settings


def _largest_arrays(inputs: object, outputs: object, top: int = 8) -> list[tuple[str, int]]:
    """``(name, bytes)`` of the largest arrays a detector holds: its inputs and outputs."""
    found: list[tuple[str, int]] = []
    for owner, obj in (("inputs", inputs), ("outputs", outputs)):
        for field, value in vars(obj).items():
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                item = item[1] if isinstance(item, tuple) else item
                label = f"{owner}.{field}" + (f"[{i}]" if isinstance(value, list) else "")
                if hasattr(item, "image"):
                    for plane in ("image", "mask", "variance"):
                        found.append((f"{label}.{plane}", getattr(item, plane).nbytes))
                elif hasattr(item, "__getitem__") and field == "raw":
                    found += [(f"{label}[{j}]", h.data.nbytes) for j, h in enumerate(item)
                              if h.data is not None]  # fmt: skip
    return sorted(found, key=lambda t: -t[1])[:top]


def _peak_mb() -> float:
    """This process's peak resident set (``VmHWM``), MB.

    Not ``ru_maxrss``: Linux carries that across fork and exec, so a child of a big parent
    reports the parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child() -> None:
    """Load one detector and run it once in this fresh process; print peak RSS and arrays."""
    from shutterline.butler import inputs as butler_inputs
    from shutterline.butler import repo
    from shutterline.pipeline import detector
    from shutterline.telemetry import stages

    root, entry = prepared_night()
    butler = repo.open_repo(str(root))
    inputs = butler_inputs.load_detector_inputs(butler, entry["visit"], entry["detectors"][0])
    loaded = _peak_mb()
    with tempfile.TemporaryDirectory() as tmp:
        out, _ = detector.process_detector(inputs, _settings(root, tmp), stages.StageRecorder())
    peak = _peak_mb()
    print(f"peak_rss_mb {peak:.0f} after_load_mb {loaded:.0f}")
    groups: dict[str, int] = {}
    for name, size in _largest_arrays(inputs, out, top=1000):
        key = name.split("[")[0] if "[" in name else name.rsplit(".", 1)[0]
        groups[key] = groups.get(key, 0) + size
    for name, size in sorted(groups.items(), key=lambda t: -t[1])[:8]:
        print(f"array {name} {size / 2**20:.0f}")


def _memory() -> tuple[float, float, list[str]]:
    proc = subprocess.run(
        [sys.executable, __file__, "--memory"], capture_output=True, text=True, check=True
    )
    lines = proc.stdout.split("\n")
    head = next(line for line in lines if line.startswith("peak_rss_mb")).split()
    arrays = [line.split(maxsplit=1)[1] for line in lines if line.startswith("array ")]
    return float(head[1]), float(head[3]), arrays


def _measure(
    inputs: DetectorInputs, root: Path, repeat: int
) -> tuple[list[float], list[Any], Any, Any, int]:
    """``repeat`` timed runs of the stages (after one untimed), each followed by three FFT
    convolutions: walls, per-stage seconds, median FFT wall and CPU, and the alert count."""
    walls, per_stage, ffts, fft_cpus, alerts = [], [], [], [], 0
    for i in range(repeat + 1):
        with tempfile.TemporaryDirectory() as tmp:
            wall, stages_s, alerts = run_once(inputs, _settings(root, tmp))
        if i > 0:  # the first pass pays imports and numba compilation
            walls.append(wall)
            per_stage.append(stages_s)
            # Three per round: the FFT's CPU time alone varies by a third under load.
            fft_wall, fft_cpu = fft_convolution_times(3)
            ffts.append(fft_wall)
            fft_cpus.append(fft_cpu)
    return walls, per_stage, statistics.median(ffts), statistics.median(fft_cpus), alerts


def _stage_rows(per_stage: list[Any], fft: float, fft_cpu: float, cmd: str) -> list[Any]:
    """Print and return each stage's median wall and CPU against the FFT, and their sum."""
    names = [n for n in per_stage[0] if not n.startswith("cpu:")]
    stage_sum = statistics.median(sum(p[n] for n in names) for p in per_stage)
    cpu_sum = statistics.median(sum(p[f"cpu:{n}"] for n in names) for p in per_stage)
    rows = [("one FFT convolution 2048x4096", f"{fft:.3f} s", "baseline", cmd)]
    # CPU seconds beside wall: on a shared machine the wall time also counts other
    # processes' turns, which swell memory-bound stages more than the FFT baseline.
    print(f"  {'stage':<14} {'wall s':>7}  {'x FFT':>5}  {'CPU s':>6}  {'x FFT CPU':>9}")
    for name in names:
        s = statistics.median(p[name] for p in per_stage)
        c = statistics.median(p[f"cpu:{name}"] for p in per_stage)
        print(f"  {name:<14} {s:7.3f}  {s / fft:5.2f}  {c:6.3f}  {c / fft_cpu:9.2f}")
        ratio = f"{s / fft:.2f} x FFT wall, {c / fft_cpu:.2f} x CPU"
        rows.append((f"stage {name}", f"{s:.3f} s", ratio, cmd))
    print(f"  {'sum':<14} {stage_sum:7.3f}  {stage_sum / fft:5.2f}  {cpu_sum:6.3f}  "
          f"{cpu_sum / fft_cpu:9.2f}")  # fmt: skip
    ratio = f"{stage_sum / fft:.1f} x FFT wall, {cpu_sum / fft_cpu:.1f} x CPU (<= 10)"
    rows.append(("stages, sum", f"{stage_sum:.3f} s", ratio, cmd))
    return rows


def main() -> None:
    """Measure and print medians and ratios."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="run the memory child only")
    args = parser.parse_args()
    if args.memory:
        memory_child()
        return
    from shutterline.butler import inputs as butler_inputs
    from shutterline.butler import repo

    root, entry = prepared_night()
    butler = repo.open_repo(str(root))
    inputs = butler_inputs.load_detector_inputs(butler, entry["visit"], entry["detectors"][0])
    walls, per_stage, fft, fft_cpu, alerts = _measure(inputs, root, args.repeat)
    median = statistics.median(walls)
    print(
        f"one 2048x4096 FFT convolution: {fft:.3f} s wall, {fft_cpu:.3f} s CPU "
        f"(median of {len(walls)} rounds of 3, interleaved)"
    )
    print(
        f"whole pipeline, ISR to spooled alerts: {median:.3f} s median over {len(walls)} "
        f"runs ({alerts} alerts) = {median / fft:.1f} x FFT convolution (target <= 10 x)"
    )
    cmd = "python tests/benchmarks/bench_pipeline.py"
    rows = _stage_rows(per_stage, fft, fft_cpu, cmd)
    peak, loaded, arrays = _memory()
    print(f"peak resident memory, one detector in a fresh process: {peak:.0f} MB "
          f"({loaded:.0f} MB after loading its inputs; target < 1536 MB)")  # fmt: skip
    print("  largest arrays (MB): " + "; ".join(arrays))
    rows.append(("peak RSS per detector", f"{peak:.0f} MB", "< 1536 MB", f"{cmd} (child)"))
    rows.append(("largest arrays (MB)", "; ".join(arrays[:4]), "", f"{cmd} (child)"))
    _results.record("bench_pipeline", rows)


if __name__ == "__main__":
    main()
