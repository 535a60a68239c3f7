"""Benchmark: characterization and calibration of one 2048 x 4096 detector on one core.

Run from the project root: ``.venv/bin/python tests/benchmarks/bench_processing.py [--repeat N]``.
Renders a synthetic post-ISR exposure (2000 stars, 300 galaxies, saturated stars, bad
columns, cosmic rays, a 2 arcsec WCS error), then prints the medians of

- the baseline: one 2048 x 4096 float32 FFT convolution (``scipy.signal.fftconvolve`` with a
  31 x 31 kernel) and a numpy ``rfft2``/``irfft2`` round trip;
- sep alone: ``sep.Background`` + evaluation, and a 5 sigma extraction, the floor the stage
  cannot go below;
- ``characterize`` and ``calibrate`` in total and per step (from their ``stats``),

each with its ratio to the FFT convolution, and the accuracy figures of the last run.

With ``--night DIR`` (the output of ``shutterline simulate``), it also runs the real chain on
every science raw there: master bias and flat from the night's calibration raws, ISR, then
``characterize`` and ``calibrate`` against ``refcat/refcat.fits``, and compares with
``truth/sources.csv`` (WCS residual of the static stars, calibrated fluxes) and the
seeing of ``night.yaml``. ``NJY_PER_UNIT`` is not compared with the night's
``njy_per_electron``: the image's electrons carry the header gain and the flat's
normalisation, so only calibrated fluxes are comparable with the truth.
"""

from __future__ import annotations

import os

# One core, as a pod gets: set before numpy loads its thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import sep  # noqa: E402
from scipy import signal  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.unit.processing import synthetic  # noqa: E402

from shutterline.processing import background, calibrate, characterize, detection  # noqa: E402


def _median_time(func: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sep_floor(scene: synthetic.Scene, repeat: int) -> dict[str, float]:
    exp = scene.exposure
    bad = background.bad_pixel_mask(exp.mask)
    sub = exp.image - background.estimate_background(exp.image, bad).array
    return {
        "sep background + back()": _median_time(
            lambda: sep.Background(exp.image, mask=bad, bw=128, bh=128).back(dtype=np.float32),
            repeat,
        ),
        "sep extract 5 sigma": _median_time(
            lambda: detection.detect(sub, exp.variance, bad), repeat
        ),
    }


def _stage_times(
    scene: synthetic.Scene, repeat: int
) -> tuple[dict[str, list[float]], characterize.CharacterizeResult, calibrate.CalibrateResult]:
    steps: dict[str, list[float]] = {}
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        char = characterize.characterize(scene.exposure)
        t1 = time.perf_counter()
        cal = calibrate.calibrate(char.exposure, char.sources, scene.refcat, "r")
        t2 = time.perf_counter()
        steps.setdefault("characterize (total)", []).append(t1 - t0)
        steps.setdefault("calibrate (total)", []).append(t2 - t1)
        steps.setdefault("characterize + calibrate", []).append(t2 - t0)
        for stats, prefix in ((char.stats, "  characterize."), (cal.stats, "  calibrate.")):
            for key, value in stats.items():
                if key.startswith("time_"):
                    name = prefix + key.removeprefix("time_").removesuffix("_s")
                    steps.setdefault(name, []).append(value)
    return steps, char, cal


def _accuracy(
    scene: synthetic.Scene, char: characterize.CharacterizeResult, cal: calibrate.CalibrateResult
) -> list[str]:
    cfg = scene.config
    ny, nx = cfg.shape
    s = scene.stars
    on = (s["x"] > 0) & (s["x"] < nx - 1) & (s["y"] > 0) & (s["y"] < ny - 1)
    assert cal.exposure.wcs is not None
    px, py = cal.exposure.wcs.wcs_world2pix(s["ra"][on], s["dec"][on], 0)
    err = np.hypot(px - s["x"][on], py - s["y"][on]) * synthetic.PIXEL_SCALE
    noise = float(np.sqrt(cfg.sky))
    bkg_err = char.background.array - scene.background
    true_fwhm = cfg.fwhm_arcsec / synthetic.PIXEL_SCALE
    p = cal.photometry
    return [
        f"sources {len(char.sources)}, PSF stars {char.psf_model.n_stars} "
        f"(degree {char.psf_model.degree}), matched {cal.astrometry.n_matched}",
        f"WCS vs truth: median {np.median(err):.4f} arcsec, max {np.max(err):.4f} arcsec "
        f"(fit rms {cal.astrometry.rms_arcsec:.3f} arcsec)",
        f"PSF FWHM {char.psf_model.fwhm:.3f} px vs true {true_fwhm:.3f} px "
        f"({100 * (char.psf_model.fwhm / true_fwhm - 1):+.2f} %)",
        f"zero point {p.njy_per_unit:.5f} +- {p.njy_per_unit_err:.5f} (stat "
        f"{p.njy_per_unit_err_stat:.5f}) nJy/e vs true "
        f"{cfg.njy_per_unit} ({(p.njy_per_unit - cfg.njy_per_unit) / p.njy_per_unit_err:+.1f}"
        f" sigma), {p.n_stars} stars",
        f"background error: median {np.median(bkg_err):+.3f} e, 99th pct |err| "
        f"{np.percentile(np.abs(bkg_err), 99):.3f} e (noise {noise:.1f} e)",
    ]


def _night_check(root: Path) -> None:
    """Process every science raw of a simulated night and compare with its truth."""
    import yaml
    from astropy.io import fits
    from astropy.table import Table
    from scipy import spatial

    from shutterline.calibs import masters
    from shutterline.isr import assemble_raw, run_isr

    raws = sorted(root.glob("raw/*/*.fits"))
    kinds = {p: fits.getheader(p, 0)["OBSTYPE"] for p in raws}
    bias = masters.master_bias([assemble_raw(fits.open(p)) for p in raws if kinds[p] == "zero"])
    flats = [assemble_raw(fits.open(p)) for p in raws if kinds[p] == "dome flat"]
    flat = masters.master_flat(flats, bias)
    refcat = Table.read(root / "refcat" / "refcat.fits")
    truth = Table.read(root / "truth" / "sources.csv")
    visits = {v["visit"]: v for v in yaml.safe_load((root / "night.yaml").read_text())["visits"]}
    for path in (p for p in raws if kinds[p] == "object"):
        exp = run_isr(fits.open(path), bias, flat)
        visit = int(exp.metadata["VISIT"])
        info = visits[visit]
        char = characterize.characterize(exp)
        cal = calibrate.calibrate(char.exposure, char.sources, refcat, info["band"])
        sel = (truth["visit"] == visit) & (truth["kind"] == "static")
        sel &= truth["detector"] == int(exp.metadata["DETECTOR"])
        tr = truth[sel]
        assert cal.exposure.wcs is not None
        px, py = cal.exposure.wcs.all_world2pix(tr["ra"], tr["dec"], 0)
        err = np.hypot(px - tr["x"], py - tr["y"]) * synthetic.PIXEL_SCALE
        src = cal.sources
        dist, idx = spatial.cKDTree(np.column_stack([tr["x"], tr["y"]])).query(
            np.column_stack([src["x"], src["y"]])
        )
        ok = (dist < 1) & (src["flags"] == 0) & (src["snr"] > 50)
        ratio = np.median(src["flux_njy"][ok] / tr["flux_nJy"][idx[ok]])
        fwhm = info["seeing_fwhm_arcsec"] / synthetic.PIXEL_SCALE
        zp_err = cal.photometry.njy_per_unit_err / cal.photometry.njy_per_unit
        print(
            f"night visit {visit} detector {exp.metadata['DETECTOR']}: WCS vs truth median "
            f"{np.median(err):.4f} arcsec (max {err.max():.4f}), PSF FWHM "
            f"{char.psf_model.fwhm:.2f} px vs seeing {fwhm:.2f} px "
            f"({100 * (char.psf_model.fwhm / fwhm - 1):+.1f} %), flux_njy / truth {ratio:.4f} "
            f"over {int(ok.sum())} stars, zero point +- {zp_err:.2%} (with systematic)"
        )


def main() -> None:
    """Render, time, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--night", type=Path, help="also check a `shutterline simulate` output")
    args = parser.parse_args()
    cfg = synthetic.SceneConfig(shape=(4096, 2048), n_stars=2000, n_galaxies=300, seed=1)
    scene = synthetic.make_scene(cfg)
    image = scene.exposure.image
    kernel = np.ones((31, 31), np.float32) / 31**2
    base = _median_time(lambda: signal.fftconvolve(image, kernel, mode="same"), args.repeat)
    rows = {
        "fftconvolve 2048x4096 float32 (baseline)": base,
        "numpy rfft2 + irfft2 round trip": _median_time(
            lambda: np.fft.irfft2(np.fft.rfft2(image), s=image.shape), args.repeat
        ),
        **_sep_floor(scene, args.repeat),
    }
    steps, char, cal = _stage_times(scene, args.repeat)
    rows.update({name: statistics.median(times) for name, times in steps.items()})
    print(f"one core, {args.repeat} repeats, image {cfg.shape[1]} x {cfg.shape[0]} float32")
    print(f"{'step':48s} {'median s':>9s} {'x FFT conv':>10s}")
    for name, value in rows.items():
        print(f"{name:48s} {value:9.4f} {value / base:10.2f}")
    for line in _accuracy(scene, char, cal):
        print(line)
    if args.night is not None:
        _night_check(args.night)


if __name__ == "__main__":
    main()
