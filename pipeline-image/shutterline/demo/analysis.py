"""The demo's analysis step: QA records of every visit, then the night report.

The demo runs it beside the processing (`NightAnalysis`): each visit is analysed in one
background thread as soon as its detectors are done, while the next visit's detectors run in
the worker processes, and its lines are printed at the analysis step, in schedule order.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shutterline.pipeline import settings as settings_mod

__all__ = ["NightAnalysis", "analyse_night"]


def _metrics(report: Any) -> dict[str, Any]:
    """A detector's prompt record as the relay would publish it (`records.PodResult`). The
    embedded run has no raw landing: its critical path is the stages' own seconds."""
    from shutterline.pipeline import records

    result = records.PodResult(report.visit, report.detector, report.status, report.reason)
    result.stages, result.quantities = dict(report.seconds), dict(report.quantities)
    record = result.metrics()
    record["criticalPathSeconds"] = result.stage_seconds
    return record


class NightAnalysis:
    """The analysis of one demo night, a visit at a time (`submit`), then its report
    (`finish`).

    Parameters
    ----------
    root, night, out : pathlib.Path
        The central repository, the simulated night (its ``schedule.yaml``), the output
        directory (the night report goes there).
    background : bool
        Analyse in a background thread (`submit` returns at once); else in `submit` itself.
    """

    def __init__(self, root: Path, night: Path, out: Path, background: bool = True) -> None:
        from shutterline.simulate import play

        self._root, self._out = root, out
        self._instrument, schedule = play.load_schedule(night / "schedule.yaml")
        self._entries = {int(e["visit"]): e for e in schedule}
        self._settings = settings_mod.Settings(
            repo=str(root), apdb="unused", spool=out / "spool", workdir=out / "work"
        )
        self._thread = concurrent.futures.ThreadPoolExecutor(1) if background else None
        self._results: list[concurrent.futures.Future[tuple[str, str | None]]] = []
        self._seconds = 0.0

    @property
    def visits(self) -> list[int]:
        """Every visit of the night's schedule, in its order."""
        return list(self._entries)

    def submit(self, visit: int, reports: Sequence[Any]) -> None:
        """Analyse ``visit`` from its detectors' ``reports`` (in the background thread)."""
        metrics = {r.detector: _metrics(r) for r in reports if r.visit == visit}
        if self._thread is None:
            done: concurrent.futures.Future[tuple[str, str | None]] = concurrent.futures.Future()
            done.set_result(self._analyse(visit, metrics))
            self._results.append(done)
        else:
            self._results.append(self._thread.submit(self._analyse, visit, metrics))

    def _analyse(self, visit: int, metrics: dict[int, Any]) -> tuple[str, str | None]:
        """``(line to print, observing night)`` of one visit; a failure is its line."""
        from shutterline.pipeline import analyze
        from shutterline.simulate import play

        t0 = time.perf_counter()
        entry = self._entries[visit]
        spec = play.visit_spec(entry, self._instrument, play.DEFAULT_RAW_URI.format(bucket="demo"))
        job = analyze.VisitTask(spec, tuple(int(d) for d in entry["detectors"]))
        try:
            result = analyze.analyze_visit(self._settings, job, metrics)
        except Exception as exc:  # one visit's analysis must not end the demo
            return f"   visit {visit}: analysis failed: {type(exc).__name__}: {exc}", None
        finally:
            self._seconds += time.perf_counter() - t0
        qa = result.qa
        line = (
            f"   visit {visit}: FWHM {qa['fwhm']} arcsec, zero point {qa['zeroPoint']}, "
            f"m5 {qa['limitingMag']}, {qa['diaCount']} DIA sources"
        )
        return line, result.visit_record.get("night")

    def finish(self) -> Path | None:
        """Wait for every visit, print their lines and write the night report; its path
        (``None`` when no visit could be analysed)."""
        from shutterline.cli import report as report_cli

        t0 = time.perf_counter()
        nights = set()
        for future in self._results:
            line, name = future.result()
            print(line, flush=True)
            nights.add(name)
        if self._thread is not None:
            self._thread.shutdown()
        written = None
        for name in sorted(n for n in nights if n):
            written = self._out / f"report-{name}.html"
            report_cli.write_night_report(str(self._root), name, written)
            print(f"   night report: {written}")
        waited = time.perf_counter() - t0
        where = "beside the processing" if self._thread is not None else "one visit at a time"
        print(f"   analysis {self._seconds:.1f} s ({where}); waited and reported {waited:.1f} s")
        return written


def analyse_night(root: Path, night: Path, reports: Sequence[Any], out: Path) -> Path | None:
    """Analyse every visit of the demo night and write its report, one visit after another;
    the report's path (``None`` when no visit could be analysed)."""
    analysis = NightAnalysis(root, night, out, background=False)
    for visit in analysis.visits:
        analysis.submit(visit, reports)
    return analysis.finish()
