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


def test_false_sources_name_the_star_or_galaxy_under_them() -> None:
    arcsec = 1.0 / 3600.0
    rows = Table(
        {
            "kind": ["transient", "static", "static", "variable"],
            "ra": [10.0, 10.0 + 20 * arcsec, 10.0 + 40 * arcsec, 10.0 + 60 * arcsec],
            "dec": [0.0] * 4, "mag": [20.0, 16.5, 19.0, 22.0], "extended": [0, 0, 1, 0],
        }
    )  # fmt: skip
    # On the transient (not false), 0.4" from the 16.5 mag star, on the galaxy, far from all.
    offsets = np.array([0.2, 20.4, 40.0, 100.0]) * arcsec
    dia = Table({"ra": 10.0 + offsets, "dec": np.zeros(4), "snr": [30.0, 12.0, 8.0, 6.0]})
    out = truth.false_sources(dia, rows)
    assert list(out["snr"]) == [12.0, 8.0, 6.0]
    assert out["star_sep_arcsec"][0] == pytest.approx(0.4, abs=0.01)
    assert out["star_mag"][0] == 16.5
    assert out["galaxy_sep_arcsec"][1] == pytest.approx(0.0, abs=0.01)
    assert out["galaxy_mag"][1] == 19.0
    assert out["star_sep_arcsec"][2] == pytest.approx(40.0, abs=0.01)  # nearest: the variable
    assert out["star_mag"][2] == 22.0


def test_a_variables_template_flux_is_the_coadds_weighted_mean(tmp_path: Path) -> None:
    # The coadd weights each template visit by 1 / its pixel variance (sky + read noise);
    # a variable at 1000 nJy on the dark visit and 4000 nJy on the bright-sky one.
    night = {
        "exposures": {"template": [1, 2]},
        "visits": [
            {**v, "sky_e_per_px": sky}
            for v, sky in zip(NIGHT["visits"], (51.0, 351.0, 100.0), strict=True)
        ],
    }
    (tmp_path / "truth").mkdir()
    (tmp_path / "night.yaml").write_text(yaml.safe_dump(night))
    Table(
        {
            "id": [5, 5, 5], "kind": ["variable"] * 3, "visit": [1, 2, 3], "detector": [1] * 3,
            "band": ["r"] * 3, "ra": [10.0] * 3, "dec": [0.0] * 3,
            "flux_nJy": [1000.0, 4000.0, 3000.0],
        }
    ).write(tmp_path / "truth" / "sources.csv", format="ascii.csv")  # fmt: skip
    w1, w2 = 1.0 / (51.0 + 49.0), 1.0 / (351.0 + 49.0)  # njy_per_electron is the same
    template = (w1 * 1000.0 + w2 * 4000.0) / (w1 + w2)  # 1600, not the plain mean 2500
    row = truth.load_truth(tmp_path, {1, 2}).rows(3, 1)
    assert row["diff_flux_nJy"][0] == pytest.approx(3000.0 - template)
    assert truth.template_weights(night)[1] == pytest.approx(4 * truth.template_weights(night)[2])
