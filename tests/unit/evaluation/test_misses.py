"""Each lost true change is named by the step that loses it."""

from __future__ import annotations

import numpy as np

from shutterline.differencing import dia
from shutterline.evaluation import misses
from tests.unit.evaluation import test_bars


def test_every_expected_source_gets_the_step_that_loses_it() -> None:
    table, expected = test_bars._labelled()
    rows = np.asarray(expected["det_row"])
    near = rows.copy()
    lost = int(np.flatnonzero(rows >= 0)[0])
    near[-1] = -1  # the saturated variable: nothing within 3"
    expected["det_row"][lost] = -1  # a detection within 3" but not within 1"
    expected["near_row"] = near
    table["reliability"][rows[1]] = 0.0  # the classifier drops this one
    fate = misses.fates(table, expected)
    assert fate[-1] == "undetected" and fate[lost] == "position"
    assert "classifier" in fate[1].split("+")
    kept = dia.accept(table)
    for i, r in enumerate(rows):
        if i not in (lost, len(rows) - 1) and r >= 0:
            assert (fate[i] == "kept") == bool(kept[r])
