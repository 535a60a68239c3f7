"""Science figures over a whole demo night, against the simulator's truth.

Runs the demo night (3 fields x 2 full-size detectors x 4 visits, templates from 3 earlier
visits per field) through every stage and prints, beside the issue's targets:
completeness of transients, variables and asteroids at difference SNR >= 10 (>= 95%), false
DIA sources per detector-visit (<= 5; a false source is > 1" from every true changing
source), asteroid association (>= 95% of detected known asteroids) and the astrometric
residual median (< 0.1"). The prepared repository is cached between runs.

    .venv/bin/python tests/benchmarks/bench_truth.py
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path

CACHE = Path.home() / ".cache" / "shutterline" / "bench" / "truth-night-v1"


def main() -> int:
    """Run, score, print; exit 1 if a target is missed."""
    from shutterline.demo import night, report

    cfg = night.DemoConfig(workdir=CACHE)
    if not (CACHE / "ready").exists():
        night.prepare_repository(cfg)
        (CACHE / "ready").write_text("ok")
    reports = night.process_night(cfg, CACHE / "night", CACHE / "repo")
    scores = report.score_night(CACHE / "night", reports)
    failed = [r for r in reports if r.status != "succeeded"]
    by_kind = scores["completeness_by_kind"]
    ast = scores["asteroid_association"]
    falses = scores["false_per_detector_visit"]
    checks = [
        (
            "completeness at SNR >= 10",
            scores["completeness_snr10"],
            ">= 0.95",
            (scores["completeness_snr10"] or 0) >= 0.95,
        ),
        (
            "false DIA sources per detector-visit (mean)",
            falses["mean"],
            "<= 5",
            (falses["mean"] or 0) <= 5,
        ),
        (
            "asteroid association",
            f"{ast['correct']}/{ast['detected']}",
            ">= 95%",
            ast["detected"] > 0 and ast["correct"] >= 0.95 * ast["detected"],
        ),
        (
            "astrometric residual median (arcsec)",
            scores["astrometry_median_arcsec"],
            "< 0.1",
            (scores["astrometry_median_arcsec"] or 1) < 0.1,
        ),
        ("detectors failed", len(failed), "0", not failed),
    ]
    print(json.dumps(by_kind))
    print(f"false per detector-visit: {falses}")
    for name, value, target, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value} (target {target})")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
