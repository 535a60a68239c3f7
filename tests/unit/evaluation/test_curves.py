"""Completeness-vs-SNR and false-rate-vs-threshold curves from matched points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from shutterline.evaluation import curves, pictures


def _rows() -> Table:
    return Table(
        {
            "kind": ["transient", "asteroid", "static"], "ra": [10.0, 10.01, 10.02],
            "dec": [0.0, 0.0, 0.0], "diff_flux_nJy": [1000.0, 80.0, 0.0],
            "expected_sigma_nJy": [50.0, 20.0, 20.0],
        }
    )  # fmt: skip


def test_points_and_curves(tmp_path: Path) -> None:
    dia = Table({"ra": [10.0, 10.05], "dec": [0.0, 0.0], "reliability": [0.9, 0.3]})
    snr, found, rel, false = curves.detector_points(dia, _rows())
    np.testing.assert_allclose(snr, [20.0, 4.0])
    assert found.tolist() == [True, False] and false.tolist() == [False, True]
    acc = curves.Curves()
    acc.add((snr, found, rel, false))
    acc.add((snr, found, rel, false))
    comp = acc.completeness()
    i20 = comp["snr_low"].index(20.0)
    assert comp["expected"][i20] == 2 and comp["found"][i20] == 2
    assert comp["found"][comp["snr_low"].index(3.0)] == 0
    fr = acc.false_rate()
    assert fr["false_per_detector_visit"][0] == 1.0  # threshold 0: every false source
    assert fr["false_per_detector_visit"][-1] == 0.0
    out = pictures.plot_curves(
        {"set": {"completeness": comp, "false_rate": fr}}, tmp_path / "c.png"
    )
    assert out.stat().st_size > 1000


def test_binomial_interval_is_clopper_pearson() -> None:
    from shutterline.evaluation import curves as curves_mod

    lo, hi = curves_mod.binomial_interval(10, 10)
    assert hi == 1.0 and abs(lo - 0.025 ** (1 / 10)) < 1e-9  # all successes: alpha/2 ** (1/n)
    lo, hi = curves_mod.binomial_interval(0, 10)
    assert lo == 0.0 and abs(hi - (1 - 0.025 ** (1 / 10))) < 1e-9
    lo, hi = curves_mod.binomial_interval(54, 58)
    assert lo < 54 / 58 < hi and 0.8 < lo < 0.86 and 0.97 < hi < 0.99
