"""The demo night: simulate, ingest, build calibrations and templates, process every visit."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from shutterline.pipeline import settings as settings_mod
from shutterline.pipeline import visit as visit_mod

__all__ = ["DemoConfig", "breakdown", "run_demo"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Size of the demo night and how to process it."""

    workdir: Path
    seed: int = 7
    fields: int = 3
    detectors: int = 2
    visits: int = 4
    template_visits: int = 3
    shape: tuple[int, int] = (2048, 4096)  # (nx, ny)
    jobs: int = 2
    direct: bool = False
    kafka: str | None = None  # also publish through the alert relay to this broker
    schema_registry: str | None = None


#: ``(step, start)`` of every ``== step`` printed since `run_demo` began: its breakdown.
_STEPS: list[tuple[str, float]] = []


def _step(name: str) -> Any:
    print(f"\n== {name}", flush=True)
    _STEPS.append((name, time.perf_counter()))
    return _STEPS[-1][1]


def breakdown(reports: list[Any], end: float) -> str:
    """Where the demo's time went: wall seconds per step, and the detectors' seconds per stage
    summed over the night (CPU in the workers, so their sum can exceed the step's wall)."""
    lines = ["where the time went (wall s):"]
    for (name, start), nxt in zip(_STEPS, [*(t for _, t in _STEPS[1:]), end], strict=True):
        lines.append(f"   {name:<52} {nxt - start:6.1f}")
    per_stage: dict[str, float] = {}
    for r in reports:
        for stage, seconds in r.seconds.items():
            per_stage[stage] = per_stage.get(stage, 0.0) + seconds
    if per_stage:
        lines.append(f"   detector stages, summed over {len(reports)} detector runs (s):")
        items = sorted(per_stage.items(), key=lambda kv: -kv[1])
        lines += [f"      {stage:<22} {seconds:6.1f}" for stage, seconds in items]
    return "\n".join(lines)


def _warm_worker() -> float:
    """Import what a detector run needs (about 3 s of CPU in a fresh process); seconds taken."""
    t0 = time.perf_counter()
    from shutterline.association import apdb  # noqa: F401
    from shutterline.butler import inputs, precache  # noqa: F401
    from shutterline.pipeline import detector, io, outputs  # noqa: F401

    return time.perf_counter() - t0


def prepare_repository(
    cfg: DemoConfig, after_simulate: Callable[[], object] | None = None
) -> tuple[Path, Path]:
    """Simulate the night and build the central repository from it; (night dir, repo dir).

    ``after_simulate`` is called once the raws are written (the demo starts its detector
    workers there: ingest and the calibrations leave a core free for their imports).
    """
    from shutterline.butler import ingest, repo
    from shutterline.calibs import build as calibs_build
    from shutterline.simulate import simulate_night
    from shutterline.templates import build as templates_build

    night, root = cfg.workdir / "night", cfg.workdir / "repo"
    t0 = _step("simulate a night")
    nx, ny = cfg.shape
    summary = simulate_night(
        night,
        seed=cfg.seed,
        fields=cfg.fields,
        detectors=cfg.detectors,
        visits=cfg.visits,
        template_visits=cfg.template_visits,
        nx=nx,
        ny=ny,
        jobs=cfg.jobs,
        progress=True,
    )
    print(f"   {summary.n_raw_files} raws in {time.perf_counter() - t0:.0f} s")
    if after_simulate is not None:
        after_simulate()
    t0 = _step("ingest raws, reference catalog and orbits")
    shutil.rmtree(root, ignore_errors=True)
    butler = repo.create_repo(str(root))
    ingest.ingest_raws(butler, sorted((night / "raw").rglob("*.fits")), progress=True)
    ingest.ingest_refcat(butler, [night / "refcat" / "refcat.fits"], progress=True)
    ingest.ingest_orbits(butler, night / "solarsystem" / "orbits.csv")
    t0 = _step("build master bias and flats")
    calibs_build.build_calibs(butler, progress=True, jobs=cfg.jobs, repo_uri=str(root))
    t0 = _step("build template coadds")
    result = templates_build.build_templates(
        butler, jobs=cfg.jobs, repo_uri=str(root), progress=True
    )
    print(f"   {len(result.templates)} patches in {time.perf_counter() - t0:.0f} s")
    return night, root


def process_night(
    cfg: DemoConfig,
    night: Path,
    root: Path,
    pool: concurrent.futures.Executor | None = None,
    on_visit: Callable[[int, list[Any]], object] | None = None,
) -> list[Any]:
    """Every scheduled visit in schedule order, so the APDB carries history forward.

    ``pool``: the detector workers (`visit_mod.detector_pool`); by default a new one.
    ``on_visit(visit, reports)`` is called as each visit's detectors are done (the demo
    starts its analysis there).
    """
    from shutterline.pipeline import analyze

    schedule = yaml.safe_load((night / "schedule.yaml").read_text())["visits"]
    out = cfg.workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    settings = settings_mod.Settings(
        repo=str(root),
        apdb=str(out / "apdb.sqlite3"),
        spool=out / "spool",
        workdir=out / "work",
        direct=cfg.direct,
        spans_path=out / "spans.jsonl",
        kafka_bootstrap=cfg.kafka,
        schema_registry_url=cfg.schema_registry,
        export=analyze.NEEDED_EXPORTS,  # what the analysis step reads back
    )
    reports: list[Any] = []
    _step(f"process {len(schedule)} visits x {cfg.detectors} detectors ({cfg.jobs} jobs)")
    # One pool for the night: each worker pays its imports and numba loads once, not per visit.
    with contextlib.ExitStack() as stack:
        if pool is None and cfg.jobs > 1:
            pool = stack.enter_context(visit_mod.detector_pool(cfg.jobs))
        for entry in schedule:
            done = _process_visit(cfg, settings, entry, pool, out)
            reports.extend(done)
            if on_visit is not None:
                on_visit(int(entry["visit"]), done)
    return reports


def _process_visit(
    cfg: DemoConfig,
    settings: settings_mod.Settings,
    entry: dict[str, Any],
    pool: concurrent.futures.Executor | None,
    out: Path,
) -> list[Any]:
    """One visit of the schedule: its detectors, a line per detector, the relay if asked."""
    done = visit_mod.run_visit(
        settings, int(entry["visit"]), entry["detectors"], cfg.jobs, pool=pool
    )
    for r in done:
        print(
            f"   visit {r.visit} detector {r.detector}: {r.status} "
            f"{r.quantities.get('dia_sources', '-')} DIA sources "
            f"{len(r.alert_paths)} alerts {sum(r.seconds.values()):.1f} s",
            flush=True,
        )
    if cfg.kafka:
        _publish(settings, done, out / "relay-spool")
    shutil.rmtree(settings.workdir, ignore_errors=True)  # a pod's volume goes with it
    return done


def _publish(settings: settings_mod.Settings, done: list[Any], relay_spool: Path) -> None:
    """The visit's alerts through the alert relay; the demo's own spool stays for its report."""
    from shutterline import exceptions
    from shutterline.relay import embedded

    outcome = embedded.publish_reports(settings, done, relay_spool=relay_spool)
    print(
        f"   relay {outcome.state}: {outcome.status['acked']} alerts to {settings.kafka_bootstrap}"
    )
    if outcome.exit_code:
        raise exceptions.RelayUnavailableError(outcome.reason)


def run_demo(cfg: DemoConfig) -> int:
    """The whole demo; returns 0 when every detector succeeded."""
    from shutterline.demo import analysis, report

    cfg.workdir.mkdir(parents=True, exist_ok=True)
    _STEPS.clear()
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(visit_mod.detector_pool(cfg.jobs)) if cfg.jobs > 1 else None

        def warm() -> None:  # the workers import while ingest and calibrations run
            if pool is not None:
                for _ in range(cfg.jobs):
                    pool.submit(_warm_worker)

        night, root = prepare_repository(cfg, after_simulate=warm)
        # Each visit is analysed in a thread of this process while the next one is processed.
        qa = analysis.NightAnalysis(root, night, cfg.workdir / "out")
        reports = process_night(cfg, night, root, pool, on_visit=qa.submit)
    _step("analysis: QA values of every visit and the night report")
    qa.finish()
    _step("report, pictures and scores")
    summary = report.write_report(cfg.workdir, night, reports)
    print(summary)
    print("\n" + breakdown(reports, time.perf_counter()))
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; outputs in {cfg.workdir}")
    (cfg.workdir / "out" / "reports.json").write_text(
        json.dumps(
            [
                {"visit": r.visit, "detector": r.detector, "status": r.status, "reason": r.reason}
                for r in reports
            ],
            indent=2,
        )
    )
    return 0 if all(r.status == "succeeded" for r in reports) else 1
