"""The night report: a standalone page whose every plot renders in a real browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shutterline.analysis import records, report
from tests.unit.analysis import browser

pytestmark = pytest.mark.slow


def _night(n_visits: int = 5, latency: bool = True) -> list[dict[str, Any]]:
    """Visit records of a made-up night: two detectors, drifting seeing, a late detector."""
    rng = np.random.default_rng(2)
    out = []
    for i in range(n_visits):
        dets: list[dict[str, Any]] = []
        for det in (28, 35):
            fwhm = 1.0 + 0.1 * i + rng.normal(0, 0.02)
            dets.append(
                {
                    "visit": 100 + i,
                    "detector": det,
                    "band": "r",
                    "mjd": 61000.1 + i * 0.01,
                    "night": "2026-03-01",
                    "fwhm": fwhm,
                    "ellipticity": 0.03,
                    "zeroPoint": 26.7 + rng.normal(0, 0.01),
                    "zeroPointScatter": 0.02,
                    "limitingMag": 23.5 - 0.1 * i,
                    "sky": 400.0,
                    "diaCount": 20 + i,
                    "diaExpected": 25.0,
                    "dipoleFraction": 0.3,
                    "psfMap": {"fwhm": (fwhm + rng.normal(0, 0.02, (4, 2))).tolist()},
                    "latencySeconds": (30.0 + 8 * i + det / 10) if latency else None,
                    "timing": {"criticalPathSeconds": 12.0 + i} if latency else None,
                    "missing": [],
                }
            )
        out.append({**records.visit_record(100 + i, dets), "detectorRecords": dets})
    return out


def test_report_stands_alone_with_every_plot_and_visit() -> None:
    page = report.night_report("2026-03-01", _night())
    assert page.count('<img class="plot"') == len(report.PLOTS)
    assert page.count("data:image/png;base64,") == len(report.PLOTS)
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    assert page.count("<tr>") == 1 + 5
    assert "2 of 10 detectors over 60 s (shutter close" in page  # 30 + 32 + 2.8, + 3.5


def test_the_summary_falls_back_to_the_critical_path_then_says_there_is_none() -> None:
    """The embedded run knows no shutter-close clock, only the stages' critical path."""
    night = _night()
    for visit in night:
        for d in visit["detectorRecords"]:
            d["latencySeconds"] = None
    night[-1]["detectorRecords"][0]["timing"]["criticalPathSeconds"] = 61.0
    page = report.night_report("2026-03-01", night)
    assert "1 of 10 detectors over 60 s (raw landed to last alert" in page
    assert "no latency figures" in report.night_report("2026-03-01", _night(latency=False))


@pytest.mark.parametrize("latency", [True, False])
def test_every_plot_renders_in_chromium(chromium: Any, tmp_path: Path, latency: bool) -> None:
    path = tmp_path / "report.html"
    path.write_text(report.night_report("2026-03-01", _night(latency=latency)))
    plots = browser.check_rendered(chromium, path, tmp_path)
    assert [p["id"] for p in plots] == [pid for pid, _, _ in report.PLOTS]
    for plot in plots:
        assert plot["complete"] and plot["naturalWidth"] > 300, plot
        assert plot["box"][2] > 300 and plot["box"][3] > 150, plot
        # A drawn plot: many colours (anti-aliased lines, colour maps) and dark ink (text).
        assert plot["distinct"] > 50 and plot["dark"] > 0.002, plot


def test_a_broken_image_is_caught(chromium: Any, tmp_path: Path) -> None:
    """The check is not vacuous: a plot whose PNG is damaged fails it."""
    page = report.night_report("2026-03-01", _night(2))
    start = page.index("base64,", page.index('id="zero-point"')) + len("base64,")
    path = tmp_path / "broken.html"
    path.write_text(page[:start] + "AAAA" + page[start + 4 :])
    plots = {p["id"]: p for p in browser.check_rendered(chromium, path, tmp_path)}
    assert plots["zero-point"]["naturalWidth"] == 0
    assert plots["image-quality"]["naturalWidth"] > 300
