"""The demo's report: Avro alert files, truth scores, the table, the pictures, a JSON summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from shutterline.demo import pictures
from shutterline.evaluation import truth
from shutterline.pipeline import summary

__all__ = ["score_night", "write_alert_files", "write_report"]


def write_alert_files(reports: Sequence[Any], out: Path) -> list[dict[str, Any]]:
    """One Avro container file per visit from the spooled packets; returns the alerts."""
    from shutterline.alerts import serialize

    schema = serialize.load_schema()
    out.mkdir(parents=True, exist_ok=True)
    everything: list[dict[str, Any]] = []
    for visit in sorted({r.visit for r in reports}):
        paths = [p for r in reports if r.visit == visit for p in r.alert_paths]
        alerts = [serialize.from_wire(Path(p).read_bytes(), schema) for p in sorted(paths)]
        serialize.write_avro_file(out / f"alerts_{visit}.avro", alerts, schema)
        everything.extend(alerts)
    return everything


def score_night(night: Path, reports: Sequence[Any]) -> dict[str, Any]:
    """Completeness, false sources, asteroid association and astrometry against the truth."""
    info = yaml.safe_load((night / "night.yaml").read_text())
    template_visits = {int(v) for v in info["exposures"]["template"]}
    changes = truth.load_truth(night, template_visits)
    per_detector: dict[tuple[int, int], truth.DetectorScore] = {}
    residuals: list[np.ndarray] = []
    for r in reports:
        if r.status != "succeeded":
            continue
        rows = changes.rows(r.visit, r.detector)
        sigma = float(r.quantities["point_source_sigma_njy"])
        per_detector[(r.visit, r.detector)] = truth.score_detector(r.dia_sources, rows, sigma)
        if r.src is not None and len(r.src):
            residuals.append(truth.astrometric_residuals(r.src, rows))
    return _totals(per_detector, residuals)


def _totals(
    scores: dict[tuple[int, int], truth.DetectorScore], residuals: list[np.ndarray]
) -> dict[str, Any]:
    kinds: dict[str, list[int]] = {k: [0, 0] for k in truth.CHANGING}
    for s in scores.values():
        for kind, (found, expected) in s.completeness_by_kind.items():
            kinds[kind][0] += found
            kinds[kind][1] += expected
    found = sum(v[0] for v in kinds.values())
    expected = sum(v[1] for v in kinds.values())
    ast_det = sum(s.n_asteroids_detected for s in scores.values())
    ast_ok = sum(s.n_asteroids_correct for s in scores.values())
    falses = [s.n_false for s in scores.values()]
    res = np.concatenate(residuals) if residuals else np.array([])
    return {
        "detector_visits": len(scores),
        "completeness_snr10": found / expected if expected else None,
        "completeness_by_kind": {k: {"found": v[0], "expected": v[1]} for k, v in kinds.items()},
        "false_per_detector_visit": {
            "mean": float(np.mean(falses)) if falses else None,
            "max": int(max(falses)) if falses else None,
        },
        "asteroid_association": {"detected": ast_det, "correct": ast_ok},
        "astrometry_median_arcsec": float(np.median(res)) if len(res) else None,
        "per_detector": {
            f"{v}/{d}": {"found": s.n_found, "expected": s.n_expected, "false": s.n_false}
            for (v, d), s in scores.items()
        },
    }


def _truth_cells(scores: dict[str, Any]) -> dict[tuple[int, int], str]:
    cells = {}
    for key, s in scores["per_detector"].items():
        visit, detector = (int(x) for x in key.split("/"))
        cells[(visit, detector)] = f"{s['found']}/{s['expected']} +{s['false']}F"
    return cells


def write_report(workdir: Path, night: Path, reports: Sequence[Any]) -> str:
    """Write alerts, scores, pictures and summary under ``workdir/out``; return the text."""
    out = workdir / "out"
    alerts = write_alert_files(reports, out / "alerts")
    scores = score_night(night, reports)
    pictures.plot_timeline(reports, out / "timeline.png")
    pictures.plot_alert_cutouts(alerts, out / "alerts.png")
    (out / "summary.json").write_text(
        json.dumps({"detectors": summary.to_json(reports), "truth": scores}, indent=2)
    )
    table = summary.format_table(reports, extra=_truth_cells(scores))
    by_kind = ", ".join(
        f"{k} {v['found']}/{v['expected']}" for k, v in scores["completeness_by_kind"].items()
    )
    ast = scores["asteroid_association"]
    lines = [
        table,
        "",
        "truth column: changing sources found/expected at difference SNR >= 10, +N false",
        f"completeness (SNR >= 10): {_pct(scores['completeness_snr10'])} ({by_kind})",
        f"false DIA sources per detector-visit: mean "
        f"{_num(scores['false_per_detector_visit']['mean'], 1)}, "
        f"max {scores['false_per_detector_visit']['max']}",
        f"known asteroids associated correctly: {ast['correct']}/{ast['detected']} detected",
        f"astrometric residual vs truth, median: {_num(scores['astrometry_median_arcsec'])} arcsec",
        f"{len(alerts)} alerts in {out / 'alerts'}; pictures: {out / 'alerts.png'}, "
        f"{out / 'timeline.png'}",
    ]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"
