"""Simulator speed: one 2048 x 4096 detector of one science visit, beside one float32 rfft2.

Run: ``.venv/bin/python tests/benchmarks/bench_simulate.py [--repeat N]``. Prints the median
wall and CPU time of ``simulate_exposure`` (sky, sources, noise, saturation, cosmic rays,
digitisation: everything but the file write), of writing the FITS file, and of one
``np.fft.rfft2`` of a 2048 x 4096 float32 image measured in the same run, with their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shutterline.simulate import config, detector, exposure, geometry, night, rawfile


def _timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeat`` calls (after one warm-up call)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cfg = config.SimConfig(seed=1, detectors=2, fields=1, visits=args.repeat + 1)
    with tempfile.TemporaryDirectory() as tmp:
        model = night.build_night(cfg, Path(tmp))
        ccd = cfg.ccdnums[0]
        det = detector.make_detector(cfg, ccd)
        response = detector.flat_response(det, cfg, "r")
        plans = [p for p in model.plans if p.role == "science"]
        cat = model.catalogs[plans[0].field]
        counter = iter(range(10**6))

        def one() -> exposure.DetectorExposure:
            plan = plans[next(counter) % len(plans)]
            return exposure.simulate_exposure(
                cfg, plan, det, response, cat, model.tracks.get(plan.expnum)
            )

        sim = one()
        path = Path(tmp) / "raw.fits"
        raw = geometry.raw_layout(cfg)

        def write() -> None:
            rawfile.write_raw(path, plans[0], det, raw, sim.written_wcs, sim.pixels)

        image = np.random.default_rng(0).standard_normal((cfg.ny, cfg.nx), dtype=np.float32)
        sim_wall, sim_cpu = _timed(one, args.repeat)
        write_wall, write_cpu = _timed(write, args.repeat)
        fft_wall, fft_cpu = _timed(lambda: np.fft.rfft2(image), args.repeat)
        n_src = len(sim.truth["id"])
    print(f"detector {cfg.nx}x{cfg.ny}, {n_src} sources on it, median of {args.repeat}")
    print(f"simulate_exposure : wall {sim_wall:.3f} s  cpu {sim_cpu:.3f} s")
    print(f"write raw FITS    : wall {write_wall:.3f} s  cpu {write_cpu:.3f} s")
    print(f"rfft2 float32     : wall {fft_wall:.3f} s  cpu {fft_cpu:.3f} s")
    print(f"ratio simulate / rfft2: wall {sim_wall / fft_wall:.2f}  cpu {sim_cpu / fft_cpu:.2f}")
    total = sim_wall + write_wall
    print(f"per detector incl. write: {total:.3f} s = {total / fft_wall:.2f} x rfft2")


if __name__ == "__main__":
    main()
