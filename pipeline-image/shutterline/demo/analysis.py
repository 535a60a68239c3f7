"""The demo's analysis step: QA records of every visit, then the night report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shutterline.pipeline import settings as settings_mod

__all__ = ["analyse_night"]


def _metrics(report: Any) -> dict[str, Any]:
    """A detector's prompt record as the relay would publish it (`records.PodResult`). The
    embedded run has no raw landing: its critical path is the stages' own seconds."""
    from shutterline.pipeline import records

    result = records.PodResult(report.visit, report.detector, report.status, report.reason)
    result.stages, result.quantities = dict(report.seconds), dict(report.quantities)
    record = result.metrics()
    record["criticalPathSeconds"] = result.stage_seconds
    return record


def analyse_night(root: Path, night: Path, reports: Sequence[Any], out: Path) -> Path | None:
    """Analyse every visit of the demo night and write its report; the report's path
    (``None`` when no visit could be analysed)."""
    from shutterline.cli import report as report_cli
    from shutterline.pipeline import analyze
    from shutterline.simulate import play

    t0 = time.perf_counter()
    instrument, schedule = play.load_schedule(night / "schedule.yaml")
    settings = settings_mod.Settings(
        repo=str(root), apdb="unused", spool=out / "spool", workdir=out / "work"
    )
    nights = set()
    for entry in schedule:
        visit = int(entry["visit"])
        spec = play.visit_spec(entry, instrument, play.DEFAULT_RAW_URI.format(bucket="demo"))
        metrics = {r.detector: _metrics(r) for r in reports if r.visit == visit}
        job = analyze.VisitTask(spec, tuple(int(d) for d in entry["detectors"]))
        try:
            result = analyze.analyze_visit(settings, job, metrics)
        except Exception as exc:  # one visit's analysis must not end the demo
            print(f"   visit {visit}: analysis failed: {type(exc).__name__}: {exc}")
            continue
        nights.add(result.visit_record.get("night"))
        qa = result.qa
        print(
            f"   visit {visit}: FWHM {qa['fwhm']} arcsec, zero point {qa['zeroPoint']}, "
            f"m5 {qa['limitingMag']}, {qa['diaCount']} DIA sources",
            flush=True,
        )
    written = None
    for name in sorted(n for n in nights if n):
        written = out / f"report-{name}.html"
        report_cli.write_night_report(str(root), name, written)
        print(f"   night report: {written}")
    print(f"   analysis and report in {time.perf_counter() - t0:.1f} s")
    return written
