"""Fake point sources injected into science images: training data for the reliability model.

As Rubin and ZTF train real/bogus, each science detector-visit of a prepared night goes
through ISR, characterisation, calibration and the template warp; fake point sources (the
calexp's own PSF, fluxes log-uniform in expected SNR from `SNR_RANGE`, with their photon
noise) are added to the calexp at random places, and *negative* fakes (`_N_NEGATIVE`, the
template's PSF, their SNR on the science image's noise) to the warped template, so that the
difference shows something that faded; without them every negative the classifier saw was
bogus and it learned "negative = bogus". Some of either sign go *on catalogue stars* of the
truth (`star_sites`, even in magnitude over `STAR_MAGS`, a change of `STAR_CHANGE` of the
star's flux): without them the only changes on stars it saw were bright-star residuals,
and it scored real variables low (lrfak2 dropped 19 of 36 detected variables of the
full-size fitting nights). It is subtracted and every detection kept
(``select=False``). A detection within `MATCH_PX` of a fake of either sign or within 1" of a
true changing source of the simulator's truth is *real*; one near neither is *bogus*. A
logistic regression (`train`) on `reliability.features` then gives the classifier file.

    .venv/bin/python -m shutterline.evaluation.fakes NIGHT_DIR [NIGHT_DIR ...] \
        [--tables DIR] [--stride N]

trains on the named prepared nights (``bench_truth.py``'s cache, fitting nights only),
writes ``differencing/reliability_<MODEL_VERSION>.json`` and prints, before and after,
which rule drops which true source (`bars.diagnose`) and completeness / false rate over a
grid of the selection's classifier bars (`bars.grid`). ``--tables`` keeps each image's
labelled tables (a re-run reuses them); ``--stride 2`` takes every other visit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from astropy.table import Table, vstack

from shutterline.differencing import dia, measurement, psfmatch, reliability, subtract
from shutterline.evaluation import truth
from shutterline.images import exposure as exposure_mod
from shutterline.images import mask as mask_mod

__all__ = [
    "MATCH_PX",
    "SNR_RANGE",
    "inject",
    "labelled_detections",
    "main",
    "stack",
    "star_sites",
    "train",
]

SNR_RANGE = (4.0, 80.0)
MATCH_PX = 2.0
#: Magnitudes of the stars fakes are put on (`star_sites`), and the fraction of the star's
#: flux such a fake adds or (in the template) takes away: a variable star's change.
STAR_MAGS = (16.0, 23.0)
STAR_CHANGE = (0.01, 0.5)
_N_FAKES = 60
_N_NEGATIVE = 30
_N_ON_STARS = 20  # positive fakes on stars, besides the _N_FAKES at random places
_N_NEG_ON_STARS = 15
_Bit = mask_mod.MaskBit
_L2 = 1e-2


def inject(
    exp: exposure_mod.Exposure,
    rng: np.random.Generator,
    n: int,
    noise_from: exposure_mod.Exposure | None = None,
    on_stars: np.ndarray | None = None,
) -> np.ndarray:
    """Add ``n`` fake point sources to ``exp`` in place; ``(n, 3)`` of ``x, y, flux`` (nJy).

    Their expected SNR (log-uniform in `SNR_RANGE`) is on the sky noise of ``noise_from``
    (default ``exp``): for fakes in the template, the science image's, which dominates the
    difference. Fakes in the calexp carry their photon noise; a coadd template's photon
    noise is averaged down over its inputs, so fakes there are added noise-free.
    ``on_stars`` (``(m, 3)`` of ``x, y, flux`` of stars, `star_sites`) puts ``m`` more on
    those stars, each a change of `STAR_CHANGE` (log-uniform) of the star's flux, or of an
    SNR drawn as above if that is more: a variable.
    """
    assert exp.psf is not None
    ny, nx = exp.shape
    ref = exp if noise_from is None else noise_from
    assert ref.psf is not None
    sigma_px = psfmatch.psf_sigma(ref.psf)
    ref_scale = exposure_mod.njy_per_unit(ref.metadata, "the image fakes' noise is from")
    noise = float(np.sqrt(np.median(ref.variance[::8, ::8]))) * ref_scale
    lo, hi = np.log(SNR_RANGE)
    point_sigma = noise * np.sqrt(4 * np.pi * sigma_px**2)
    flux = np.exp(rng.uniform(float(lo), float(hi), n)) * point_sigma
    edge = max(30, exp.psf.shape[0] // 2 + 1)  # the whole PSF stamp inside
    x, y = rng.uniform(edge, nx - edge, n), rng.uniform(edge, ny - edge, n)
    if on_stars is not None and len(on_stars):
        m = len(on_stars)
        frac = np.exp(rng.uniform(np.log(STAR_CHANGE[0]), np.log(STAR_CHANGE[1]), m))
        # A faint star's fraction would often be undetectable: then an SNR as for the others.
        change = np.maximum(frac * on_stars[:, 2],
                            np.exp(rng.uniform(float(lo), float(hi), m)) * point_sigma)  # fmt: skip
        x, y, flux = np.r_[x, on_stars[:, 0]], np.r_[y, on_stars[:, 1]], np.r_[flux, change]
    _add_psfs(exp, rng, np.column_stack([x, y, flux]), photon=noise_from is None)
    return np.column_stack([x, y, flux])


def _add_psfs(
    exp: exposure_mod.Exposure, rng: np.random.Generator, fakes: np.ndarray, photon: bool
) -> None:
    """Add PSF images of ``(x, y, flux nJy)`` rows to ``exp``, with photon noise if asked."""
    assert exp.psf is not None
    scale = exposure_mod.njy_per_unit(exp.metadata, "the image fakes go into")
    k = exp.psf.shape[0] // 2
    for xi, yi, fi in fakes:
        iy, ix = round(yi), round(xi)
        model = measurement.shifted_psf(exp.psf, yi - iy, xi - ix, derivatives=False)[0]
        model = np.clip(model, 0.0, None) * (fi / scale)
        win = (slice(iy - k, iy + k + 1), slice(ix - k, ix + k + 1))
        if photon:
            exp.image[win] += (model + rng.normal(size=model.shape) * np.sqrt(model)).astype(
                np.float32
            )
            exp.variance[win] += model.astype(np.float32)
        else:
            exp.image[win] += model.astype(np.float32)


def star_sites(
    rows: Table, exp: exposure_mod.Exposure, rng: np.random.Generator, n: int
) -> np.ndarray:
    """``(n, 3)`` ``x, y, flux`` of the truth's point stars, even in magnitude over `STAR_MAGS`.

    Stars saturated or masked near their centre, and stars within the PSF stamp of the
    border, are left out (a change there is not measurable, whatever the classifier says).
    """
    assert exp.psf is not None
    stars = rows[(rows["kind"] == "static") & (rows["extended"] == 0)]
    mag = np.asarray(stars["mag"], float)
    x, y = np.asarray(stars["x"], float), np.asarray(stars["y"], float)
    edge = max(30, exp.psf.shape[0] // 2 + 1)
    ny, nx = exp.shape
    ok = (mag >= STAR_MAGS[0]) & (mag <= STAR_MAGS[1])
    ok &= (x >= edge) & (x < nx - edge) & (y >= edge) & (y < ny - edge)
    idx = np.flatnonzero(ok)
    hard = int(_Bit.BAD | _Bit.SAT | _Bit.CR | _Bit.EDGE | _Bit.NO_DATA)
    clean = [
        i for i in idx
        if not (exp.mask[round(y[i]) - 2:round(y[i]) + 3,
                         round(x[i]) - 2:round(x[i]) + 3] & hard).any()
    ]  # fmt: skip
    if not clean:
        return np.zeros((0, 3))
    order = np.asarray(clean)[np.argsort(mag[clean])]
    pick = np.searchsorted(mag[order], rng.uniform(*STAR_MAGS, n)).clip(0, len(order) - 1)
    pick = order[np.unique(pick)]
    return np.column_stack([x[pick], y[pick], np.asarray(stars["flux_nJy"], float)[pick]])


def labelled_detections(
    night_dir: Path, seed: int = 0, keep: Path | None = None, stride: int = 1
) -> tuple[Table, Table]:
    """Every detection of every science detector-visit of a prepared night, with fakes.

    ``(detections, expected)``: the DIA table's columns plus ``label`` (1 real, 0 bogus),
    ``fake`` (bool, either sign), ``on_star`` (a fake on a star) and ``visit, detector``;
    and the truth's changing sources at expected SNR >= 10 with the detection matching each
    (``det_row`` into the first table, -1 for none) and the mask planes at its place
    (`bars.diagnose` says which rule drops each). ``keep``: a directory where each
    detector-visit's pair of tables is written, and read instead of made when there (a long
    run can stop and go on). ``stride``: every n-th visit of the schedule only.
    """
    from shutterline.butler import repo

    night = night_dir / "night"
    info = yaml.safe_load((night / "night.yaml").read_text())
    changes = truth.load_truth(night, {int(v) for v in info["exposures"]["template"]})
    butler = repo.open_repo(str(night_dir / "repo"))
    schedule = yaml.safe_load((night / "schedule.yaml").read_text())["visits"]
    pairs = [(int(e["visit"]), int(d)) for e in schedule[::stride] for d in e["detectors"]]
    out = []
    for visit, det in pairs:
        paths = [keep / f"{night_dir.name}-{visit}-{det}-{part}.fits"
                 for part in ("detections", "expected")] if keep else []  # fmt: skip
        if paths and all(p.exists() for p in paths):
            out.append((Table.read(paths[0]), Table.read(paths[1])))
            continue
        rng = np.random.default_rng([seed, visit, det])
        out.append(_one_image(butler, visit, det, changes.rows(visit, det), rng))
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            for table, path in zip(out[-1], paths, strict=True):
                table.write(path, overwrite=True)
        print(f"   {night_dir.name} {visit}/{det}: {len(out[-1][0])} detections, "
              f"{int(out[-1][0]['fake'].sum())} fakes found, "
              f"{int(out[-1][0]['on_star'].sum())} on stars", flush=True)  # fmt: skip
    return stack(out)


def _one_image(
    butler: Any, visit: int, det: int, rows: Table, rng: np.random.Generator
) -> tuple[Table, Table]:
    """One detector-visit's labelled detections and expected sources (see the caller)."""
    from shutterline.butler import inputs as butler_inputs
    from shutterline.pipeline import detector
    from shutterline.telemetry import stages

    inputs = butler_inputs.load_detector_inputs(butler, visit, det)
    done = detector.run_image_stages(inputs, stages.StageRecorder())
    sites = star_sites(rows, done.calexp, rng, _N_ON_STARS + _N_NEG_ON_STARS)
    pos = inject(done.calexp, rng, _N_FAKES, on_stars=sites[:_N_ON_STARS])
    neg = inject(done.template, rng, _N_NEGATIVE, noise_from=done.calexp,
                 on_stars=sites[_N_ON_STARS:])  # fmt: skip
    diff = subtract.subtract(done.calexp, done.template).difference
    table = dia.detect_and_measure(diff, done.calexp, done.template, select=False)
    on_star = np.r_[np.zeros(_N_FAKES), np.ones(len(pos) - _N_FAKES),
                    np.zeros(_N_NEGATIVE), np.ones(len(neg) - _N_NEGATIVE)]  # fmt: skip
    table = _label(table, np.vstack([pos, neg]), on_star.astype(bool), rows)
    table["visit"], table["detector"] = visit, det
    return table, _expected(table, rows, diff)


def stack(pairs: list[tuple[Table, Table]]) -> tuple[Table, Table]:
    """One detections table and one expected table, ``det_row`` still pointing into it."""
    offset, expected = 0, []
    for table, ex in pairs:
        ex = ex.copy()
        ex["det_row"] = np.where(ex["det_row"] >= 0, ex["det_row"] + offset, -1)
        expected.append(ex)
        offset += len(table)
    return vstack([t for t, _ in pairs]), vstack(expected)


def _expected(table: Table, rows: Table, diff: exposure_mod.Exposure) -> Table:
    """The changing truth rows at expected SNR >= 10, matched to ``table`` within 1"."""
    changing = rows[np.isin(rows["kind"], truth.CHANGING)]
    changing = changing[np.nan_to_num(truth.expected_snr(changing)) >= 10.0]
    to_det, _ = truth._separation_match(
        np.asarray(changing["ra"], float), np.asarray(changing["dec"], float),
        np.asarray(table["ra"], float), np.asarray(table["dec"], float), 1.0,
    )  # fmt: skip
    ex = Table({name: changing[name] for name in ("id", "kind", "visit", "detector", "x", "y",
                                                  "flux_nJy", "mag", "diff_flux_nJy")})  # fmt: skip
    ex["expected_snr"] = truth.expected_snr(changing)
    ex["det_row"] = to_det
    ny, nx = diff.shape
    iy = np.clip(np.round(np.asarray(changing["y"], float)).astype(int), 0, ny - 1)
    ix = np.clip(np.round(np.asarray(changing["x"], float)).astype(int), 0, nx - 1)
    ex["mask"] = diff.mask[iy, ix].astype(np.int64)
    ex["diff_snr_px"] = diff.image[iy, ix] / np.sqrt(np.maximum(diff.variance[iy, ix], 1e-30))
    return ex


def _label(table: Table, fakes: np.ndarray, on_star: np.ndarray, rows: Table) -> Table:
    x, y = np.asarray(table["x"]), np.asarray(table["y"])
    d = np.hypot(x[:, None] - fakes[:, 0], y[:, None] - fakes[:, 1])
    fake = d.min(axis=1, initial=np.inf) <= MATCH_PX
    nearest = np.argmin(d, axis=1) if fakes.size and len(table) else np.zeros(len(table), int)
    changing = rows[np.isin(rows["kind"], truth.CHANGING)]
    to_truth, _ = truth._separation_match(
        np.asarray(table["ra"], float), np.asarray(table["dec"], float),
        np.asarray(changing["ra"], float), np.asarray(changing["dec"], float), 1.0,
    )  # fmt: skip
    table.meta.clear()  # per-image figures; the stacked table of many images has none
    table["fake"] = fake
    table["on_star"] = fake & on_star[nearest] if len(on_star) else fake
    table["label"] = (fake | (to_truth >= 0)).astype(np.int8)
    return table


def train(table: Table) -> dict[str, Any]:
    """Class-balanced L2 logistic regression (Newton steps) on `reliability.features`.

    Real rows that `dia.rejections`' residual rule drops whatever their score (a change too
    small for its star, mostly fakes on bright stars) are left out: they look exactly like
    the static-star residuals labelled bogus and would only blur the two.
    """
    real = np.asarray(table["label"]) > 0
    table = table[~(real & dia.rejections(table)["residual"])]
    x = reliability.features(table)
    y = np.asarray(table["label"], float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.column_stack([(x - mean) / scale, np.ones(len(y))])
    w = np.where(y > 0, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9))
    beta = np.zeros(z.shape[1])
    reg = _L2 * len(y) * np.r_[np.ones(z.shape[1] - 1), 0.0]
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -40, 40)))
        grad = z.T @ (w * (p - y)) + reg * beta
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return {
        "version": reliability.MODEL_VERSION,
        "features": list(reliability.FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": beta[:-1].tolist(),
        "intercept": float(beta[-1]),
        "n_real": int(y.sum()),
        "n_bogus": int(len(y) - y.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    """Train on the named prepared nights, write the classifier file, show its selection."""
    from shutterline.evaluation import bars

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nights", nargs="+", type=Path, help="prepared night directories")
    parser.add_argument("--tables", type=Path,
                        help="keep each image's labelled tables here (and reuse them)")  # fmt: skip
    parser.add_argument("--stride", type=int, default=1,
                        help="every n-th visit of each night only")  # fmt: skip
    args = parser.parse_args(argv)
    table, expected = stack([labelled_detections(n, i, args.tables, args.stride)
                             for i, n in enumerate(args.nights)])  # fmt: skip
    print("today's selection (the stored scores):")
    print(bars.format_diagnosis(bars.diagnose(table, expected)))
    model = train(table)
    model["trained_on"] = [n.name for n in args.nights]
    path = Path(reliability.__file__).with_name(f"reliability_{reliability.MODEL_VERSION}.json")
    path.write_text(json.dumps(model, indent=1) + "\n")
    reliability.load_model.cache_clear()
    on_star = int(table["on_star"].sum())
    print(f"{model['n_real']} real ({int(table['fake'].sum())} fakes, {on_star} on stars), "
          f"{model['n_bogus']} bogus; wrote {path}")  # fmt: skip
    table["reliability"] = reliability.classify(table)
    print(f"with {reliability.MODEL_VERSION} at the current bars:")
    print(bars.format_diagnosis(bars.diagnose(table, expected)))
    print(bars.format_grid(bars.grid(table, expected)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
