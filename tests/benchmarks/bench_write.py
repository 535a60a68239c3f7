"""Writing one 2048 x 4096 exposure (`images.write_exposure`) against the writer it replaced,
in the same run, and whether the two files are the same bytes.

Reference: the planes handed to astropy as native-order copies, which astropy byte-swaps in
place, writes and swaps back (three passes over each plane). Candidate: `write_exposure`, one
big-endian copy per plane that astropy writes as it is. Both write to the same directory;
interleaved, medians of wall and CPU seconds. The products stage writes two such exposures
per detector (calexp, difference), the template build one per patch.

    .venv/bin/python tests/benchmarks/bench_write.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.wcs import WCS

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "pipeline-image"), str(Path(__file__).resolve().parent)]
import _results  # noqa: E402

# The earlier writer, kept where the test that guards the bytes keeps it.
from tests.unit.images.test_exposure import _write_as_before as write_before  # noqa: E402

from shutterline.images import Exposure, MaskBit, write_exposure  # noqa: E402

COMMAND = ".venv/bin/python tests/benchmarks/bench_write.py"


def _exposure() -> Exposure:
    rng = np.random.default_rng(0)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval, wcs.wcs.crpix = [150.0, 2.0], [1024.5, 2048.5]
    wcs.wcs.cd = [[-7.3e-5, 0.0], [0.0, 7.3e-5]]
    shape = (4096, 2048)
    return Exposure(
        rng.normal(100.0, 10.0, shape).astype(np.float32),
        np.where(rng.random(shape) < 0.01, int(MaskBit.CR), 0).astype(np.int32),
        rng.uniform(90.0, 110.0, shape).astype(np.float32),
        wcs=wcs,
        psf=np.full((25, 25), 1 / 625, np.float32),
        metadata={"VISIT": 1, "DETECTOR": 28, "NJY_PER_UNIT": 0.5, "BUNIT": "electron"},
    )


def main() -> None:
    """Print the medians and the ratio; record them for ``make bench``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    exp = _exposure()
    sides = {"before": write_before, "now": write_exposure}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory(prefix="bench-write-") as tmp:
        paths = {k: Path(tmp) / f"{k}.fits" for k in sides}
        for _ in range(args.repeat + 1):  # the first round warms up, untimed
            for name, write in sides.items():
                t0, c0 = time.perf_counter(), time.process_time()
                write(exp, paths[name])
                times[name].append((time.perf_counter() - t0, time.process_time() - c0))
        same = paths["before"].read_bytes() == paths["now"].read_bytes()
    (bw, bc), (nw, nc) = (
        (statistics.median(w for w, _ in ts[1:]), statistics.median(c for _, c in ts[1:]))
        for ts in times.values()
    )
    print(f"write one 2048 x 4096 exposure, medians of {args.repeat}: "
          f"wall {bw:.3f} -> {nw:.3f} s (x{nw / bw:.2f}), "
          f"CPU {bc:.3f} -> {nc:.3f} s (x{nc / bc:.2f}); same bytes: {same}")  # fmt: skip
    _results.record("bench_write", [(
        "write_exposure, 2048x4096, CPU s", f"{nc:.3f}",
        f"before {bc:.3f} s (x{nc / bc:.2f}); wall x{nw / bw:.2f}; same bytes {same}", COMMAND,
    )])  # fmt: skip
    if not same:
        raise SystemExit("write_exposure's bytes differ from the earlier writer's")


if __name__ == "__main__":
    main()
