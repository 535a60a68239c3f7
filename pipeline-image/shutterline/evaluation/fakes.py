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
full-size fitting nights). `_N_BORDER` of the fakes and of the star sites sit in the
`BORDER_BAND_PX` band along the border (down to `BORDER_MIN_PX`, inside the EDGE band; lrfak3
never saw a real change within 30 px of it and scored one 0.036), and `_N_TRAILED` are *trailed*
(`inject_trails`: a fast asteroid's trail, `TRAIL_PX` long in a 30 s exposure). It is
subtracted and every detection kept (``select=False``). A detection within `MATCH_PX` of a
fake of either sign (of a trailed fake's segment) or within 1" of a true changing source of
the simulator's truth is *real*; one near neither is *bogus*. A logistic regression (`train`)
on `reliability.features` then gives the classifier file.

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
    "BORDER_BAND_PX",
    "BORDER_MIN_PX",
    "MATCH_PX",
    "SNR_RANGE",
    "TRAIL_PX",
    "inject",
    "inject_trails",
    "label",
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
#: The band along the border where `_N_BORDER` random fakes and star sites of each sign go:
#: wider than the subtraction's EDGE band (<= 20 px) and the 30 px lrfak3's fakes kept off.
BORDER_BAND_PX = 40.0
#: The nearest a fake comes to the border (its PSF stamp cropped there, `_add_psfs`): inside
#: the difference's EDGE band, where lrfak4's first fit (fakes kept a stamp's half-width, 25
#: px, off) still saw no real change carrying the EDGE flag.
BORDER_MIN_PX = 3.0
_N_BORDER = 8
#: Trail lengths (px, log-uniform) of the trailed fakes: 1 to 19 deg/day in 30 s at DECam's
#: 0.263"/px (4.75 px per deg/day), fast near-Earth asteroids; up to the trail fit's reach
#: (`differencing.trailed`, 96 px). A satellite crosses the whole detector in 30 s: that is
#: the streak search's (masked, an artefact in the truth), not a source to call real.
TRAIL_PX = (5.0, 90.0)
_N_TRAILED = 12
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
    edge = exp.psf.shape[0] // 2 + 1  # the whole PSF stamp inside
    x, y = _positions(rng, n, (ny, nx), edge)
    if on_stars is not None and len(on_stars):
        m = len(on_stars)
        frac = np.exp(rng.uniform(np.log(STAR_CHANGE[0]), np.log(STAR_CHANGE[1]), m))
        # A faint star's fraction would often be undetectable: then an SNR as for the others.
        change = np.maximum(frac * on_stars[:, 2],
                            np.exp(rng.uniform(float(lo), float(hi), m)) * point_sigma)  # fmt: skip
        x, y, flux = np.r_[x, on_stars[:, 0]], np.r_[y, on_stars[:, 1]], np.r_[flux, change]
    _add_psfs(exp, rng, np.column_stack([x, y, flux]), photon=noise_from is None)
    return np.column_stack([x, y, flux])


def _positions(
    rng: np.random.Generator, n: int, shape: tuple[int, int], edge: float
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` places at least ``edge`` from the border, but `_N_BORDER` of them in the band.

    Those are `BORDER_MIN_PX` to `BORDER_BAND_PX` from one side (their stamps cropped).
    """
    ny, nx = shape
    x, y = rng.uniform(edge, nx - edge, n), rng.uniform(edge, ny - edge, n)
    k = min(_N_BORDER, n)
    depth = rng.uniform(BORDER_MIN_PX, BORDER_BAND_PX, k)
    side = rng.integers(0, 4, k)  # left, right, bottom, top
    x[:k] = np.where(side == 0, depth, np.where(side == 1, nx - 1 - depth, x[:k]))
    y[:k] = np.where(side == 2, depth, np.where(side == 3, ny - 1 - depth, y[:k]))
    return x, y


def inject_trails(exp: exposure_mod.Exposure, rng: np.random.Generator, n: int) -> np.ndarray:
    """Add ``n`` trailed fakes to ``exp`` in place; ``(n, 5)`` of ``x, y, flux, lx, ly``.

    A Gaussian of the PSF's width smeared along a segment (`trailed.trail_model`), length
    log-uniform in `TRAIL_PX`, any angle, with photon noise; ``(lx, ly)`` is the segment
    (px). The flux gives an SNR log-uniform in `SNR_RANGE` on the trail's own noise.
    """
    from shutterline.differencing import trailed

    assert exp.psf is not None
    ny, nx = exp.shape
    sigma = psfmatch.psf_sigma(exp.psf)
    scale = exposure_mod.njy_per_unit(exp.metadata, "the image fakes go into")
    noise = float(np.sqrt(np.median(exp.variance[::8, ::8]))) * scale
    length = np.exp(rng.uniform(np.log(TRAIL_PX[0]), np.log(TRAIL_PX[1]), n))
    theta = rng.uniform(0.0, np.pi, n)
    snr = np.exp(rng.uniform(np.log(SNR_RANGE[0]), np.log(SNR_RANGE[1]), n))
    flux = snr * noise * np.sqrt(4 * np.pi * sigma**2 + 2 * np.sqrt(np.pi) * sigma * length)
    half = np.ceil(length / 2 + 4 * sigma).astype(int) + 1
    x = rng.uniform(half, nx - 1 - half)
    y = rng.uniform(half, ny - 1 - half)
    out = np.column_stack([x, y, flux, length * np.cos(theta), length * np.sin(theta)])
    for (xi, yi, fi, lx, ly), h in zip(out, half, strict=True):
        iy, ix = round(yi), round(xi)
        yy, xx = np.mgrid[iy - h : iy + h + 1, ix - h : ix + h + 1].astype(float)
        model = np.clip(trailed.trail_model(yy, xx, np.array([xi, yi, fi / scale, lx, ly]),
                                            sigma), 0.0, None)  # fmt: skip
        win = (slice(iy - h, iy + h + 1), slice(ix - h, ix + h + 1))
        exp.image[win] += (model + rng.normal(size=model.shape) * np.sqrt(model)).astype(np.float32)
        exp.variance[win] += model.astype(np.float32)
    return out


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
        # Cropped at the border: a star site near it may be nearer than this PSF's stamp (a
        # template's PSF can be wider than the calexp's the sites were chosen with).
        y0, x0 = max(iy - k, 0), max(ix - k, 0)
        y1, x1 = min(iy + k + 1, exp.shape[0]), min(ix + k + 1, exp.shape[1])
        model = model[y0 - (iy - k) : y1 - (iy - k), x0 - (ix - k) : x1 - (ix - k)]
        win = (slice(y0, y1), slice(x0, x1))
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

    Stars saturated or masked near their centre, and stars nearer the border than
    `BORDER_MIN_PX`, are left out (a change there is not measurable, whatever the classifier
    says). Up to `_N_BORDER` of the ``n`` are stars within `BORDER_BAND_PX` of the border.
    """
    assert exp.psf is not None
    stars = rows[(rows["kind"] == "static") & (rows["extended"] == 0)]
    mag = np.asarray(stars["mag"], float)
    x, y = np.asarray(stars["x"], float), np.asarray(stars["y"], float)
    edge = BORDER_MIN_PX
    ny, nx = exp.shape
    ok = (mag >= STAR_MAGS[0]) & (mag <= STAR_MAGS[1])
    ok &= (x >= edge) & (x < nx - edge) & (y >= edge) & (y < ny - edge)
    hard = int(_Bit.BAD | _Bit.SAT | _Bit.CR | _Bit.NO_DATA)
    clean = np.asarray([
        i for i in np.flatnonzero(ok)
        if not (exp.mask[round(y[i]) - 2:round(y[i]) + 3,
                         round(x[i]) - 2:round(x[i]) + 3] & hard).any()
    ], int)  # fmt: skip
    near = np.minimum(np.minimum(x, nx - 1 - x), np.minimum(y, ny - 1 - y)) < BORDER_BAND_PX
    band = rng.permutation(clean[near[clean]])[:_N_BORDER]
    rest = clean[~near[clean]]
    if not len(rest) and not len(band):
        return np.zeros((0, 3))
    order = rest[np.argsort(mag[rest])]
    draws = rng.uniform(*STAR_MAGS, max(n - len(band), 0))
    pick = order[np.unique(np.searchsorted(mag[order], draws).clip(0, len(order) - 1))]
    pick = rng.permutation(np.r_[band, pick if len(order) else []].astype(int))
    return np.column_stack([x[pick], y[pick], np.asarray(stars["flux_nJy"], float)[pick]])


def labelled_detections(
    night_dir: Path,
    seed: int = 0,
    keep: Path | None = None,
    stride: int = 1,
    with_fakes: bool = True,
) -> tuple[Table, Table]:
    """Every detection of every science detector-visit of a prepared night, with fakes.

    ``(detections, expected)``: the DIA table's columns plus ``label`` (1 real, 0 bogus),
    ``fake`` (bool, either sign), ``on_star`` (a fake on a star) and ``visit, detector``;
    and the truth's changing sources at expected SNR >= 10 with the detection matching each
    (``det_row`` into the first table, -1 for none) and the mask planes at its place
    (`bars.diagnose` says which rule drops each). ``keep``: a directory where each
    detector-visit's pair of tables is written, and read instead of made when there (a long
    run can stop and go on). ``stride``: every n-th visit of the schedule only.
    ``with_fakes=False``: the night's own sources only (`evaluation.misses`; tables kept
    under their own names).
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
        if not with_fakes:
            paths = [p.with_name("real-" + p.name) for p in paths]
        if paths and all(p.exists() for p in paths):
            out.append((Table.read(paths[0]), Table.read(paths[1])))
            continue
        rng = np.random.default_rng([seed, visit, det])
        out.append(_one_image(butler, visit, det, changes.rows(visit, det), rng, with_fakes))
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            for table, path in zip(out[-1], paths, strict=True):
                table.write(path, overwrite=True)
        print(f"   {night_dir.name} {visit}/{det}: {len(out[-1][0])} detections, "
              f"{int(out[-1][0]['fake'].sum())} fakes found, "
              f"{int(out[-1][0]['on_star'].sum())} on stars", flush=True)  # fmt: skip
    return stack(out)


def _one_image(
    butler: Any, visit: int, det: int, rows: Table, rng: np.random.Generator, with_fakes: bool
) -> tuple[Table, Table]:
    """One detector-visit's labelled detections and expected sources (see the caller)."""
    from shutterline.butler import inputs as butler_inputs
    from shutterline.pipeline import detector
    from shutterline.telemetry import stages

    inputs = butler_inputs.load_detector_inputs(butler, visit, det)
    done = detector.run_image_stages(inputs, stages.StageRecorder())
    n_pos, n_neg = (_N_FAKES, _N_NEGATIVE) if with_fakes else (0, 0)
    sites = star_sites(rows, done.calexp, rng, _N_ON_STARS + _N_NEG_ON_STARS)[: n_pos + n_neg]
    pos = inject(done.calexp, rng, n_pos, on_stars=sites[:_N_ON_STARS])
    neg = inject(done.template, rng, n_neg, noise_from=done.calexp,
                 on_stars=sites[_N_ON_STARS:])  # fmt: skip
    trails = inject_trails(done.calexp, rng, _N_TRAILED if with_fakes else 0)
    diff = subtract.subtract(done.calexp, done.template).difference
    table = dia.detect_and_measure(diff, done.calexp, done.template, select=False)
    on_star = np.r_[np.zeros(n_pos), np.ones(len(pos) - n_pos),
                    np.zeros(n_neg), np.ones(len(neg) - n_neg)]  # fmt: skip
    table = label(table, np.vstack([pos, neg]), on_star.astype(bool), rows, trails)
    table["visit"], table["detector"] = visit, det
    return table, _expected(table, rows, diff)


def stack(pairs: list[tuple[Table, Table]]) -> tuple[Table, Table]:
    """One detections table (``image``: the index of its pair) and one expected table, its
    ``det_row`` and ``near_row`` pointing into the first."""
    offset, expected = 0, []
    for i, (table, ex) in enumerate(pairs):
        table["label"] = np.asarray(table["label"]).astype(np.int8)  # a FITS round trip: bool
        table["image"] = i  # nights share visit numbers (`bars.grid` counts images by this)
        ex = ex.copy()
        for name in ("det_row", "near_row"):
            if name in ex.colnames:
                ex[name] = np.where(ex[name] >= 0, ex[name] + offset, -1)
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
    # The nearest detection within 3" (`evaluation.misses`: lost by position, or not found).
    ex["near_row"], near = truth._separation_match(
        np.asarray(changing["ra"], float), np.asarray(changing["dec"], float),
        np.asarray(table["ra"], float), np.asarray(table["dec"], float), 3.0,
    )  # fmt: skip
    ex["near_arcsec"] = near
    ny, nx = diff.shape
    iy = np.clip(np.round(np.asarray(changing["y"], float)).astype(int), 0, ny - 1)
    ix = np.clip(np.round(np.asarray(changing["x"], float)).astype(int), 0, nx - 1)
    ex["mask"] = diff.mask[iy, ix].astype(np.int64)
    ex["diff_snr_px"] = diff.image[iy, ix] / np.sqrt(np.maximum(diff.variance[iy, ix], 1e-30))
    return ex


def label(
    table: Table, fakes: np.ndarray, on_star: np.ndarray, rows: Table, trails: np.ndarray
) -> Table:
    """Add ``fake``, ``on_star``, ``trailed_fake`` and ``label`` (1 real, 0 bogus) to ``table``.

    ``fakes``: ``(n, 3)`` point fakes (``x, y, flux``), ``on_star`` which of them sit on a
    star; ``trails``: ``(m, 5)`` trailed fakes (`inject_trails`); a detection within
    `MATCH_PX` of a trail's segment (a piece of it, too) is that fake's.
    """
    x, y = np.asarray(table["x"]), np.asarray(table["y"])
    d = np.hypot(x[:, None] - fakes[:, 0], y[:, None] - fakes[:, 1])
    on_trail = _segment_distance(x, y, trails).min(axis=1, initial=np.inf) <= MATCH_PX
    fake = (d.min(axis=1, initial=np.inf) <= MATCH_PX) | on_trail
    nearest = np.argmin(d, axis=1) if fakes.size and len(table) else np.zeros(len(table), int)
    changing = rows[np.isin(rows["kind"], truth.CHANGING)]
    to_truth, _ = truth._separation_match(
        np.asarray(table["ra"], float), np.asarray(table["dec"], float),
        np.asarray(changing["ra"], float), np.asarray(changing["dec"], float), 1.0,
    )  # fmt: skip
    table.meta.clear()  # per-image figures; the stacked table of many images has none
    table["fake"] = fake
    table["on_star"] = fake & ~on_trail & on_star[nearest] if len(on_star) else fake & ~on_trail
    table["trailed_fake"] = on_trail
    table["label"] = (fake | (to_truth >= 0)).astype(np.int8)
    return table


def _segment_distance(x: np.ndarray, y: np.ndarray, trails: np.ndarray) -> np.ndarray:
    """``(len(x), len(trails))`` distances (px) from points to the trails' segments."""
    if not len(trails):
        return np.full((len(x), 0), np.inf)
    x0, y0, _, lx, ly = (trails[:, i] for i in range(5))
    px, py = x[:, None] - (x0 - lx / 2), y[:, None] - (y0 - ly / 2)
    t = np.clip((px * lx + py * ly) / np.maximum(lx**2 + ly**2, 1e-9), 0.0, 1.0)
    return np.asarray(np.hypot(px - t * lx, py - t * ly))


def train(table: Table) -> dict[str, Any]:
    """Class-balanced L2 logistic regression (Newton steps) on `reliability.features`.

    Only the rows the classifier decides on are fitted: those no other rule of
    `dia.rejections` drops whatever their score. lrfak4 left out only the real rows of the
    residual rule (a change too small for its star); the bogus ones stayed, bright-star
    residuals that rule drops anyway, and taught it "on a bright star = bogus": true
    variables on stars scored 0.19-0.30 on the fitting nights (`evaluation.misses`).
    """
    drops = dia.rejections(table)
    drops.pop("classifier")
    table = table[~np.any(np.vstack([np.zeros(len(table), bool), *drops.values()]), axis=0)]
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
