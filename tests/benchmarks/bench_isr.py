"""Benchmark: instrument signature removal of one 2048 x 4096 detector on one core.

Run from the project root: ``.venv/bin/python tests/benchmarks/bench_isr.py [--repeat N]``.
The raw, master bias and master flat come from the simulator (``shutterline.simulate``: stars,
galaxies, cosmic rays, saturated stars with bleed trails, bad columns). Prints medians of
`assemble_raw` and `run_isr` (a fresh HDUList read from FITS bytes each time, so the 16-bit
scaling is counted), and beside them the median of one 2048 x 4096 float32 FFT convolution
(``scipy.signal.fftconvolve`` with a 31 x 31 kernel) measured in the same run.
"""

from __future__ import annotations

import os

# One core, as a pod gets: set before numpy loads its thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402
from scipy import signal  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


from shutterline.images import Exposure  # noqa: E402
from shutterline.isr import assemble_raw, run_isr  # noqa: E402

SHAPE = (4096, 2048)


def _simulated(workdir: Path) -> tuple[bytes, Exposure, Exposure]:
    """A full-size science raw from the simulator, and master calibrations from its night."""
    from shutterline.calibs import masters
    from shutterline.simulate import simulate_night

    night = simulate_night(
        workdir, seed=3, visits=1, detectors=1, fields=1, template_visits=0, n_bias=3, n_flat=3
    )

    def raw(exposure: int) -> Path:
        return next((workdir / "raw" / str(exposure)).glob("*.fits"))

    def assembled(exposures: list[int]) -> list[Exposure]:
        out = []
        for e in exposures:
            with fits.open(raw(e)) as hdul:
                out.append(assemble_raw(hdul))
        return out

    biases, flats = assembled(night.bias), assembled(night.flat[night.bands[0]])
    start = time.perf_counter()
    bias = masters.master_bias(biases)
    middle = time.perf_counter()
    flat = masters.master_flat(flats, bias)
    end = time.perf_counter()
    print(
        f"master bias of {len(biases)}: {middle - start:.2f} s, master flat of {len(flats)}: "
        f"{end - middle:.2f} s (single runs)"
    )
    return raw(night.science[0]).read_bytes(), bias, flat


def _median_time(func: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        data, bias, flat = _simulated(Path(tmp))
    image = rng.standard_normal(SHAPE).astype(np.float32)
    kernel = rng.standard_normal((31, 31)).astype(np.float32)

    def fresh() -> fits.HDUList:
        return fits.open(io.BytesIO(data))

    def assemble() -> None:
        with fresh() as hdul:
            assemble_raw(hdul)

    def isr() -> None:
        with fresh() as hdul:
            run_isr(hdul, bias, flat)

    fft = _median_time(lambda: signal.fftconvolve(image, kernel, mode="same"), args.repeat)
    t_asm = _median_time(assemble, args.repeat)
    t_isr = _median_time(isr, args.repeat)
    with fresh() as hdul:
        md = run_isr(hdul, bias, flat).metadata
    print(f"detector {SHAPE[1]} x {SHAPE[0]}, median of {args.repeat}, one core")
    print(f"fft convolution (baseline)  {fft:7.3f} s")
    print(f"assemble_raw                {t_asm:7.3f} s  = {t_asm / fft:5.2f} x fft")
    print(f"run_isr                     {t_isr:7.3f} s  = {t_isr / fft:5.2f} x fft")
    print(f"flagged: CR {md['N_CR']} px, SAT {md['N_SAT']} px, BAD {md['N_BAD']} px")


if __name__ == "__main__":
    main()
