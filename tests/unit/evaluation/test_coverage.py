"""A source no template covers is counted apart, from the simulator's true footprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from astropy.table import Table

from shutterline.evaluation import coverage, truth
from shutterline.simulate import config, geometry

CFG = config.SimConfig(nx=256, ny=512, detectors=1)
TEMPLATE_BORESIGHT = (150.02, -2.3)


def _night() -> dict:
    ccd = CFG.ccdnums[0]
    conf = {"nx": CFG.nx, "ny": CFG.ny, "overscan": CFG.overscan}
    visit = {"role": "template", "band": "r", "field": "F", "point_source_sigma_njy": 30.0,
             "njy_per_electron": 0.5}  # fmt: skip
    return {
        "config": conf,
        "detectors": [{"ccdnum": ccd}],
        "exposures": {"template": [1]},
        "visits": [
            {**visit, "visit": 1, "ra": TEMPLATE_BORESIGHT[0], "dec": TEMPLATE_BORESIGHT[1]},
            {**visit, "visit": 3, "role": "science", "ra": 150.0, "dec": -2.3},
        ],
    }


def _sky_at_template_pixels(x: list[float], y: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions of pixels of the template's (true, distorted) detector frame."""
    w = geometry.detector_wcs(CFG, CFG.ccdnums[0], *TEMPLATE_BORESIGHT)
    return geometry.data_pixels_to_sky(w, CFG, np.asarray(x, float), np.asarray(y, float))


def test_covered_where_the_centre_lies_on_a_template_pixel() -> None:
    """Inside, and up to half a pixel past the last pixel centre: covered; farther: not."""
    x = [100.0, -0.4, -0.6, 255.0 + 0.45, 255.0 + 4.0, 100.0, -0.3, -0.4]
    y = [200.0, 200.0, 200.0, 200.0, 200.0, 511.0 + 25.0, -0.3, -0.4]
    ra, dec = _sky_at_template_pixels(x, y)
    got = coverage.template_covered(_night(), ra, dec, "r")
    assert got.tolist() == [True, True, False, True, False, False, True, False]
    assert not coverage.template_covered(_night(), ra, dec, "g").any()  # no g template


def test_an_uncovered_source_leaves_the_denominator_and_is_counted_apart(tmp_path: Path) -> None:
    """Two bright transients, one 40 px off every template pixel: expected 1, not covered 1.

    Before coverage entered the score, both were expected (and the far one missed by force).
    """
    (tmp_path / "truth").mkdir()
    (tmp_path / "night.yaml").write_text(yaml.safe_dump(_night()))
    ra, dec = _sky_at_template_pixels([100.0, -40.0], [200.0, 200.0])
    Table({"id": [1, 2], "kind": ["transient"] * 2, "visit": [3, 3], "detector": [1, 1],
           "band": ["r"] * 2, "ra": ra, "dec": dec, "flux_nJy": [2.0e4, 2.0e4]}).write(
        tmp_path / "truth" / "sources.csv", format="ascii.csv")  # fmt: skip
    rows = truth.load_truth(tmp_path, {1}).rows(3, 1)
    assert rows["template_covered"].tolist() == [True, False]
    score = truth.score_detector(Table({"ra": ra[:1], "dec": dec[:1]}), rows)
    assert (score.n_expected, score.n_found, score.n_not_covered) == (1, 1, 1)
    assert score.completeness_by_kind["transient"] == (1, 1)
    assert score.completeness_by_kind_any_coverage == {
        "variable": (0, 0), "transient": (1, 2), "asteroid": (0, 0)}  # fmt: skip
