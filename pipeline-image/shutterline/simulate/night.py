"""A whole simulated night: plan, sky, asteroids, every raw file, and the side files.

Work is split into tasks of one detector and one band (its flats, template and science
visits) plus one task per detector for its biases; each task rebuilds the detector from the
seed, so tasks run in any order, in any process, and give the same bytes.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from shutterline.simulate import (
    asteroids,
    config,
    detector,
    exposure,
    outputs,
    rawfile,
    record,
    schedule,
    sky,
)

__all__ = ["NightModel", "NightSummary", "build_night", "simulate_night"]


@dataclass(frozen=True)
class NightModel:
    """Everything the per-detector tasks need, fixed before any pixel is drawn."""

    cfg: config.SimConfig
    out: Path
    fields: list[schedule.Field]
    plans: list[schedule.ExposurePlan]
    catalogs: dict[str, Table]
    orbits: Table
    tracks: dict[int, asteroids.Track]


@dataclass(frozen=True)
class NightSummary:
    """What ``simulate_night`` wrote (all ids are EXPNUMs = visit ids)."""

    out: Path
    config: config.SimConfig
    seed: int
    ccdnums: tuple[int, ...]
    bands: tuple[str, ...]
    fields: list[schedule.Field]
    bias: list[int]
    flat: dict[str, list[int]]
    template: list[int]
    science: list[int]
    n_raw_files: int
    n_truth_rows: int
    n_refcat: int
    n_asteroids: int
    elapsed_s: float
    wcs_errors: dict[int, dict[int, dict[str, float]]] = field(repr=False)


def build_night(cfg: config.SimConfig, out: Path) -> NightModel:
    """Plan the night and draw its sky and asteroids (no pixels yet)."""
    fields = schedule.make_fields(cfg)
    plans = schedule.plan_night(cfg, fields)
    sci = [p.mjd for p in plans if p.role == "science"]
    catalogs = {
        fld.name: sky.make_field_catalog(cfg, i, fld, (min(sci), max(sci)))
        for i, fld in enumerate(fields)
    }
    orbit_table = asteroids.make_asteroids(cfg, fields, plans)
    return NightModel(
        cfg, out, fields, plans, catalogs, orbit_table, asteroids.tracks_for(orbit_table, plans)
    )


def _tasks(model: NightModel) -> list[tuple[int, str]]:
    """(ccdnum, band or 'bias') work units."""
    return [(ccd, b) for ccd in model.cfg.ccdnums for b in ("bias", *model.cfg.bands)]


def _task_plans(model: NightModel, what: str) -> list[schedule.ExposurePlan]:
    if what == "bias":
        return [p for p in model.plans if p.role == "bias"]
    return [p for p in model.plans if p.role != "bias" and p.band == what]


_MODEL: NightModel | None = None


def _init_worker(model: NightModel) -> None:
    global _MODEL
    _MODEL = model


def _run_task(
    model: NightModel, ccd: int, what: str, on_file: Callable[[], None] | None = None
) -> tuple[list[dict[str, np.ndarray]], dict[int, dict[str, float]]]:
    """Simulate and write every raw of one task; return its truth columns and WCS errors."""
    cfg = model.cfg
    det = detector.make_detector(cfg, ccd)
    response = None if what == "bias" else detector.flat_response(det, cfg, what)
    raw = exposure.geometry.raw_layout(cfg)
    truths, errors = [], {}
    for plan in _task_plans(model, what):
        cat = model.catalogs.get(plan.field)
        sim = exposure.simulate_exposure(
            cfg, plan, det, response, cat, model.tracks.get(plan.expnum)
        )
        rawfile.write_raw(
            rawfile.raw_path(model.out, plan.expnum, ccd),
            plan,
            det,
            raw,
            sim.written_wcs,
            sim.pixels,
        )
        if sim.truth:
            truths.append(sim.truth)
        errors[plan.expnum] = sim.wcs_error
        if on_file is not None:
            on_file()
    return truths, errors


def _pool_task(
    ccd: int, what: str
) -> tuple[list[dict[str, np.ndarray]], dict[int, dict[str, float]]]:
    assert _MODEL is not None
    return _run_task(_MODEL, ccd, what)


def _start_method() -> str:
    """fork when this process runs no other thread (fast: no re-imports), else spawn.

    A forked child inherits other threads' locks mid-state (an exporter thread of the
    caller, say), which can deadlock it; spawn costs seconds of imports but is always safe.
    tqdm's sleeping monitor thread does not count: it holds no lock the workers use.
    """
    others = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and type(t).__name__ != "TMonitor"
    ]
    return "spawn" if others else "fork"


def _tick(bar: Any) -> None:
    bar.update(1)


def _run_all(
    model: NightModel, jobs: int, progress: bool
) -> tuple[list[dict[str, np.ndarray]], dict[int, dict[int, dict[str, float]]]]:
    from tqdm import tqdm

    tasks = _tasks(model)
    sizes = {t: len(_task_plans(model, t[1])) for t in tasks}
    results: dict[tuple[int, str], Any] = {}
    total = sum(sizes.values())
    if jobs <= 1:
        with tqdm(total=total, unit="raw", desc="simulate", disable=not progress) as bar:
            for ccd, what in tasks:
                results[(ccd, what)] = _run_task(model, ccd, what, lambda: _tick(bar))
    else:
        # Choose the start method and fork the workers before tqdm starts its monitor thread.
        ctx = multiprocessing.get_context(_start_method())
        with concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_init_worker, initargs=(model,)
        ) as pool:
            futures = {pool.submit(_pool_task, *t): t for t in tasks}
            with tqdm(total=total, unit="raw", desc="simulate", disable=not progress) as bar:
                for fut in concurrent.futures.as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update(sizes[futures[fut]])
    truths: list[dict[str, np.ndarray]] = []
    errors: dict[int, dict[int, dict[str, float]]] = {}
    for (ccd, _what), (task_truths, task_errors) in sorted(results.items()):
        truths += task_truths
        for expnum, err in task_errors.items():
            errors.setdefault(expnum, {})[ccd] = err
    return truths, errors


def simulate_night(
    out: str | Path,
    cfg: config.SimConfig | None = None,
    *,
    jobs: int = 1,
    progress: bool = False,
    **overrides: Any,
) -> NightSummary:
    """Simulate a night into ``out`` (the tree of docs/architecture.md) and summarise it.

    Parameters
    ----------
    out : path
        Output directory (created; existing files of the same names are replaced).
    cfg : SimConfig, optional
        Settings; keyword ``overrides`` (``seed=``, ``visits=``, ``detectors=``, ``fields=``,
        ``bands=``, ``template_visits=``, ``nx=``, ``ny=``, ...) replace its fields.
    jobs : int
        Worker processes; the output bytes do not depend on it.
    progress : bool
        Show a tqdm progress bar over raw files.
    """
    start = time.perf_counter()
    cfg = _settings(cfg, overrides)
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    model = build_night(cfg, out_path)
    _remove_stale_raws(model)
    truths, errors = _run_all(model, jobs, progress)
    columns = {
        name: np.concatenate([t[name] for t in truths]) if truths else np.zeros(0)
        for name in exposure.TRUTH_COLUMNS
    }
    n_truth = outputs.write_truth(out_path, columns)
    n_ref = outputs.write_refcat(out_path, list(model.catalogs.values()), cfg.seed)
    outputs.write_orbits(out_path, model.orbits)
    outputs.write_schedule(out_path, model.plans, cfg.ccdnums)
    record.write_night_record(out_path, cfg, model.fields, model.plans, errors)
    return _summary(model, n_truth, n_ref, errors, time.perf_counter() - start)


def _remove_stale_raws(model: NightModel) -> None:
    """Delete raws an earlier simulation left in ``out`` that this night does not write.

    Only files named like the simulator's own (``raw/<n>/raw_<n>_<cc>.fits``) in a directory
    holding a simulator ``night.yaml`` are touched, so ingest never mixes two nights.
    """
    if not (model.out / "night.yaml").is_file():
        return
    keep = {
        rawfile.raw_path(model.out, p.expnum, c) for p in model.plans for c in model.cfg.ccdnums
    }
    for path in (model.out / "raw").glob("*/raw_*_*.fits"):
        if path not in keep and path.name.startswith(f"raw_{path.parent.name}_"):
            path.unlink()
            if not any(path.parent.iterdir()):
                path.parent.rmdir()


def _settings(cfg: config.SimConfig | None, overrides: dict[str, Any]) -> config.SimConfig:
    """``cfg`` (or the defaults) with ``overrides``; a new detector count re-picks the CCDs."""
    base = (cfg or config.SimConfig()).__dict__
    repick = "detectors" in overrides and "ccdnums" not in overrides
    return config.SimConfig(**{**base, **overrides, **({"ccdnums": ()} if repick else {})})


def _summary(
    model: NightModel,
    n_truth: int,
    n_ref: int,
    errors: dict[int, dict[int, dict[str, float]]],
    elapsed: float,
) -> NightSummary:
    cfg, plans = model.cfg, model.plans
    by_role = {r: [p.expnum for p in plans if p.role == r] for r in ("bias", "template", "science")}
    flats = {b: [p.expnum for p in plans if p.role == "flat" and p.band == b] for b in cfg.bands}
    return NightSummary(
        model.out,
        cfg,
        cfg.seed,
        cfg.ccdnums,
        cfg.bands,
        model.fields,
        by_role["bias"],
        flats,
        by_role["template"],
        by_role["science"],
        len(plans) * len(cfg.ccdnums),
        n_truth,
        n_ref,
        len(model.orbits),
        round(elapsed, 3),
        errors,
    )
