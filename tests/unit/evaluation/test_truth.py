"""The completeness denominator comes from the simulator's noise model, not the pipeline's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.table import Table

from shutterline.evaluation import truth

NIGHT = {
    "exposures": {"template": [1, 2]},
    "visits": [
        {"visit": 1, "role": "template", "field": "F", "band": "r",
         "point_source_sigma_njy": 30.0, "njy_per_electron": 0.5},
        {"visit": 2, "role": "template", "field": "F", "band": "r",
         "point_source_sigma_njy": 40.0, "njy_per_electron": 0.5},
        {"visit": 3, "role": "science", "field": "F", "band": "r",
         "point_source_sigma_njy": 50.0, "njy_per_electron": 0.5},
    ],
}  # fmt: skip


def _night(tmp_path: Path) -> Path:
    (tmp_path / "truth").mkdir()
    (tmp_path / "night.yaml").write_text(yaml.safe_dump(NIGHT))
    Table(
        {
            "id": [7, 8, 9], "kind": ["transient", "transient", "static"], "visit": [3, 3, 3],
            "detector": [1, 1, 1], "band": ["r"] * 3, "ra": [10.0, 10.001, 10.002],
            "dec": [0.0, 0.0, 0.0], "flux_nJy": [500.0, 20000.0, 1000.0],
        }
    ).write(tmp_path / "truth" / "sources.csv", format="ascii.csv")  # fmt: skip
    return tmp_path


def test_expected_sigma_is_science_template_and_shot_noise(tmp_path: Path) -> None:
    rows = truth.load_truth(_night(tmp_path), {1, 2}).rows(3, 1)
    template_var = 1.0 / (30.0**-2 + 40.0**-2)
    for row in rows:
        want = np.sqrt(50.0**2 + template_var + row["flux_nJy"] * 0.5)
        assert row["expected_sigma_nJy"] == pytest.approx(want)


def test_a_noisier_pipeline_estimate_cannot_shrink_the_denominator(tmp_path: Path) -> None:
    rows = truth.load_truth(_night(tmp_path), {1, 2}).rows(3, 1)
    dia = Table({"ra": [10.001], "dec": [0.0]})
    for claimed in (10.0, 1e6):  # whatever noise the pipeline claims for its image
        score = truth.score_detector(dia, rows, claimed)
        # The 500 nJy transient is SNR ~ 9 by the model: not expected; the bright one is.
        assert (score.n_expected, score.n_found) == (1, 1)
