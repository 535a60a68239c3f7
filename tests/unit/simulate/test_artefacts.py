"""Science-only defects and satellite trails: in the science frames, not in the calibrations."""

from __future__ import annotations

import dataclasses

import numpy as np
import yaml

from shutterline.simulate import artefacts, config, night
from tests.unit.simulate import helpers


def test_late_columns_and_trails_are_drawn_and_drawn_in() -> None:
    cfg = dataclasses.replace(helpers.CFG, late_columns_per_detector=3.0, trails_per_exposure=2.0)
    cols = artefacts.late_columns(cfg, helpers.CCD)
    assert cols and cols == artefacts.late_columns(cfg, helpers.CCD)  # fixed for the night
    image = np.full((cfg.ny, cfg.nx), 500.0, np.float32)
    artefacts.add_late_columns(image, cols, 500.0)
    for col, first_row, kind in cols:
        below = image[first_row:, col]
        assert np.all(below < 20.0) if kind == "dead" else np.all(below > 5000.0)
    trails = artefacts.trails_for(cfg, 100003, helpers.CCD, 30.0)
    sky = np.zeros((cfg.ny, cfg.nx), np.float32)
    artefacts.add_trails(sky, trails, 4.0)
    assert len(trails) == 0 or (sky > 0.5 * min(t.peak_e for t in trails)).sum() > cfg.ny


def test_night_records_the_defects_and_trails(small_night: night.NightSummary) -> None:
    doc = yaml.safe_load((small_night.out / "night.yaml").read_text())
    for det in doc["detectors"]:
        cfg = config.SimConfig(**{**helpers.SMALL.__dict__})
        assert det["late_columns"] == [list(c) for c in artefacts.late_columns(cfg, det["ccdnum"])]
    assert all("trails" in v for v in doc["visits"])
    assert doc["config"]["late_columns_per_detector"] == helpers.SMALL.late_columns_per_detector
