"""Which rule drops which true source, and completeness / false rate over the bars."""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from shutterline.differencing import dia, subtract
from shutterline.evaluation import bars
from shutterline.images import MaskBit
from tests.unit.differencing import synth


def _labelled() -> tuple[Table, Table]:
    pair = synth.make_pair(81, 1.0, 0.7, shape=(384, 256), spacing=48, snr=9.0)
    rng = np.random.default_rng(81)
    for y, x in rng.integers(30, 220, (12, 2)):
        pair.science.image[y, x] += 3000.0  # bogus: unmasked spikes
    res = subtract.subtract(pair.science, pair.template)
    table = dia.detect_and_measure(res.difference, pair.science, pair.template, select=False)
    d = np.hypot(np.asarray(table["x"])[:, None] - pair.x, np.asarray(table["y"])[:, None] - pair.y)
    table["label"] = (d.min(axis=1) <= 2).astype(np.int8)
    table["visit"], table["detector"] = 1, np.where(np.arange(len(table)) % 2, 1, 2)
    to_det = np.where(d.min(axis=0) <= 2, d.argmin(axis=0), -1)
    # One more true source never detected, under a saturated pixel.
    n = len(pair.x)
    expected = Table({"kind": [*["transient"] * n, "variable"],
                      "det_row": np.append(to_det, -1),
                      "mask": np.append(np.zeros(n, int), int(MaskBit.SAT)),
                      "diff_snr_px": np.append(np.full(n, 5.0), 1.0)})  # fmt: skip
    return table, expected


def test_diagnosis_accounts_for_every_expected_source() -> None:
    table, expected = _labelled()
    diag = bars.diagnose(table, expected)
    t, v = diag["transient"], diag["variable"]
    assert t["expected"] == len(expected) - 1 and t["kept"] >= 0.8 * t["expected"]
    rows = np.asarray(expected["det_row"])[:-1]
    dropped = int(np.sum(~dia.accept(table)[rows[rows >= 0]]))
    assert t["kept"] + dropped + t["undetected"] == t["expected"]
    assert v == {"expected": 1, "kept": 0, "undetected": 1, "undetected sat": 1,
                 "undetected pixel snr < 3": 1}  # fmt: skip
    assert "variable: expected 1" in bars.format_diagnosis(diag)


def test_grid_trades_false_sources_for_completeness() -> None:
    table, expected = _labelled()
    rows = {
        (r["min_classifier"], r["min_classifier_bright"]): r for r in bars.grid(table, expected)
    }
    none, strict = rows[(0.0, 0.0)], rows[(0.5, 0.5)]
    assert none["found"] >= strict["found"] and none["expected"] == len(expected)
    assert none["false_per_detector_visit"] > strict["false_per_detector_visit"]
    # Two detector-visits: the false rate is per detector-visit.
    bogus_kept = int(np.sum(dia.accept(table, 0.0, 0.0) & (np.asarray(table["label"]) == 0)))
    assert none["false_per_detector_visit"] == bogus_kept / 2
    assert "bars 0.00/0.00" in bars.format_grid(bars.grid(table, expected, (0.0,)))


def test_grid_counts_each_night_s_images_apart() -> None:
    """Two nights share visit numbers: stacked, their images are four detector-visits, not two
    (lrfak4's grid divided two nights' false sources by one night's images: twice the rate)."""
    from shutterline.evaluation import fakes

    table, expected = _labelled()
    expected["near_row"] = expected["det_row"]
    one = bars.grid(table, expected, (0.0,))[0]
    two = bars.grid(*fakes.stack([(table.copy(), expected), (table.copy(), expected)]), (0.0,))
    assert two[0]["false_per_detector_visit"] == one["false_per_detector_visit"]
    assert two[0]["found"] == 2 * one["found"]
