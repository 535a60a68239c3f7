"""Fake point sources injected into science images: training data for the reliability model.

As Rubin and ZTF train real/bogus, each science detector-visit of a prepared night goes
through ISR, characterisation, calibration and the template warp; fake point sources (the
calexp's own PSF, fluxes log-uniform in expected SNR from `SNR_RANGE`, with their photon
noise) are added to the calexp at random places, and *negative* fakes (`_N_NEGATIVE`, the
template's PSF, their SNR on the science image's noise) to the warped template, so that the
difference shows something that faded; without them every negative the classifier saw was
bogus and it learned "negative = bogus". It is subtracted and every detection kept
(``select=False``). A detection within `MATCH_PX` of a fake of either sign or within 1" of a
true changing source of the simulator's truth is *real*; one near neither is *bogus*. A
logistic regression (`train`) on `reliability.features` then gives the classifier file.

    .venv/bin/python -m shutterline.evaluation.fakes NIGHT_DIR [NIGHT_DIR ...]

trains on the named prepared nights (``bench_truth.py``'s cache, fitting nights only) and
writes ``differencing/reliability_<MODEL_VERSION>.json``.
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

__all__ = ["MATCH_PX", "SNR_RANGE", "inject", "labelled_detections", "main", "train"]

SNR_RANGE = (4.0, 80.0)
MATCH_PX = 2.0
_N_FAKES = 60
_N_NEGATIVE = 30
_L2 = 1e-2


def inject(
    exp: exposure_mod.Exposure,
    rng: np.random.Generator,
    n: int,
    noise_from: exposure_mod.Exposure | None = None,
) -> np.ndarray:
    """Add ``n`` fake point sources to ``exp`` in place; ``(n, 3)`` of ``x, y, flux`` (nJy).

    Their expected SNR (log-uniform in `SNR_RANGE`) is on the sky noise of ``noise_from``
    (default ``exp``): for fakes in the template, the science image's, which dominates the
    difference. Fakes in the calexp carry their photon noise; a coadd template's photon
    noise is averaged down over its inputs, so fakes there are added noise-free.
    """
    assert exp.psf is not None
    ny, nx = exp.shape
    scale = exposure_mod.njy_per_unit(exp.metadata, "the image fakes go into")
    ref = exp if noise_from is None else noise_from
    ref_scale = exposure_mod.njy_per_unit(ref.metadata, "the image fakes' noise is from")
    assert ref.psf is not None
    sigma_px = psfmatch.psf_sigma(ref.psf)
    noise = float(np.sqrt(np.median(ref.variance[::8, ::8]))) * ref_scale
    point_sigma = noise * np.sqrt(4 * np.pi * sigma_px**2)
    photon = noise_from is None
    lo, hi = np.log(SNR_RANGE)
    snr = np.exp(rng.uniform(float(lo), float(hi), n))
    k = exp.psf.shape[0] // 2
    edge = max(30, k + 1)  # the whole PSF stamp inside (a warped template's PSF may be wide)
    x, y = rng.uniform(edge, nx - edge, n), rng.uniform(edge, ny - edge, n)
    for xi, yi, fi in zip(x, y, snr * point_sigma, strict=True):
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
    return np.column_stack([x, y, snr * point_sigma])


def labelled_detections(night_dir: Path, seed: int = 0) -> Table:
    """Every detection of every science detector-visit of a prepared night, with fakes.

    Columns: the DIA table's, plus ``label`` (1 real, 0 bogus) and ``fake`` (bool, either
    sign).
    """
    from shutterline.butler import inputs as butler_inputs
    from shutterline.butler import repo
    from shutterline.pipeline import detector
    from shutterline.telemetry import stages

    night = night_dir / "night"
    info = yaml.safe_load((night / "night.yaml").read_text())
    changes = truth.load_truth(night, {int(v) for v in info["exposures"]["template"]})
    butler = repo.open_repo(str(night_dir / "repo"))
    rng = np.random.default_rng(seed)
    out = []
    for entry in yaml.safe_load((night / "schedule.yaml").read_text())["visits"]:
        for det in entry["detectors"]:
            inputs = butler_inputs.load_detector_inputs(butler, int(entry["visit"]), int(det))
            done = detector.run_image_stages(inputs, stages.StageRecorder())
            fakes = np.vstack([
                inject(done.calexp, rng, _N_FAKES),
                inject(done.template, rng, _N_NEGATIVE, noise_from=done.calexp),
            ])  # fmt: skip
            diff = subtract.subtract(done.calexp, done.template).difference
            table = dia.detect_and_measure(diff, done.calexp, done.template, select=False)
            out.append(_label(table, fakes, changes.rows(int(entry["visit"]), int(det))))
            print(f"   {night_dir.name} {entry['visit']}/{det}: {len(table)} detections, "
                  f"{int(out[-1]['fake'].sum())} fakes found", flush=True)  # fmt: skip
    return vstack(out)


def _label(table: Table, fakes: np.ndarray, rows: Table) -> Table:
    x, y = np.asarray(table["x"]), np.asarray(table["y"])
    d = np.hypot(x[:, None] - fakes[:, 0], y[:, None] - fakes[:, 1])
    fake = d.min(axis=1, initial=np.inf) <= MATCH_PX
    changing = rows[np.isin(rows["kind"], truth.CHANGING)]
    to_truth, _ = truth._separation_match(
        np.asarray(table["ra"], float), np.asarray(table["dec"], float),
        np.asarray(changing["ra"], float), np.asarray(changing["dec"], float), 1.0,
    )  # fmt: skip
    table.meta.clear()  # per-image figures; the stacked table of many images has none
    table["fake"] = fake
    table["label"] = (fake | (to_truth >= 0)).astype(np.int8)
    return table


def train(table: Table) -> dict[str, Any]:
    """Class-balanced L2 logistic regression (Newton steps) on `reliability.features`."""
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
    """Train on the named prepared nights and write the classifier file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nights", nargs="+", type=Path, help="prepared night directories")
    args = parser.parse_args(argv)
    table = vstack([labelled_detections(n, seed=i) for i, n in enumerate(args.nights)])
    model = train(table)
    model["trained_on"] = [n.name for n in args.nights]
    path = Path(reliability.__file__).with_name(f"reliability_{reliability.MODEL_VERSION}.json")
    path.write_text(json.dumps(model, indent=1) + "\n")
    neg = int((table["fake"] & table["is_negative"]).sum())
    print(f"{model['n_real']} real ({int(table['fake'].sum())} fakes, {neg} negative), "
          f"{model['n_bogus']} bogus")  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
