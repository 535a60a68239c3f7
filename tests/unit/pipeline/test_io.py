"""Where a detector's inputs come from: pre-cached and read through the pre-cache's plan, or
read straight from the central repository, the stages get the same inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from shutterline.butler import inputs as butler_inputs
from shutterline.pipeline import io as pipeline_io
from shutterline.telemetry import stages
from tests.unit.pipeline.conftest import SmallNight

pytestmark = pytest.mark.slow


def _assert_same_inputs(a: butler_inputs.DetectorInputs, b: butler_inputs.DetectorInputs) -> None:
    assert (a.visit, a.detector, a.band, a.mjd, a.exptime) == (
        b.visit,
        b.detector,
        b.band,
        b.mjd,
        b.exptime,
    )
    np.testing.assert_array_equal(a.footprint, b.footprint)
    np.testing.assert_array_equal(a.raw[1].data, b.raw[1].data)
    assert a.raw[0].header == b.raw[0].header
    for x, y in ((a.bias, b.bias), (a.flat, b.flat)):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.mask, y.mask)

    def patches(inputs: butler_inputs.DetectorInputs) -> list[tuple[int, int, tuple[int, int]]]:
        return [(p.tract, p.patch, p.shape) for p, _ in inputs.templates]

    assert patches(a) == patches(b)
    for (_, x), (_, y) in zip(a.templates, b.templates, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.variance, y.variance)
    assert a.refcat.colnames == b.refcat.colnames
    assert len(a.refcat) == len(b.refcat) > 0
    np.testing.assert_array_equal(a.refcat["id"], b.refcat["id"])
    assert (a.orbits is None) == (b.orbits is None)
    if a.orbits is not None and b.orbits is not None:
        assert len(a.orbits) == len(b.orbits)


def test_precached_inputs_read_through_the_precache_plan_equal_direct_reads(
    small_night: SmallNight, tmp_path: Path
) -> None:
    entry = small_night.visits[0]
    visit, detector = int(entry["visit"]), int(entry["detectors"][0])
    direct, _ = pipeline_io.load_inputs(
        small_night.settings(tmp_path / "direct", direct=True),
        visit,
        detector,
        stages.StageRecorder(),
    )
    settings = small_night.settings(tmp_path / "cached")
    rec = stages.StageRecorder()
    cached, _ = pipeline_io.load_inputs(settings, visit, detector, rec)
    assert {"precache", "load_inputs"} <= set(rec.seconds)
    assert (pipeline_io.local_repo_path(settings, visit, detector) / "butler.yaml").is_file()
    _assert_same_inputs(direct, cached)
    # Pre-cached already (a restarted detector): planned again on the local repository alone.
    rec = stages.StageRecorder()
    again, _ = pipeline_io.load_inputs(settings, visit, detector, rec)
    assert "precache" not in rec.seconds
    _assert_same_inputs(direct, again)


def test_exports_hardlink_only_within_one_file_system(tmp_path: Path) -> None:
    (tmp_path / "central").mkdir()
    (tmp_path / "local").mkdir()
    assert pipeline_io.export_transfer(str(tmp_path / "central"), tmp_path / "local") == "hardlink"
    assert pipeline_io.export_transfer("s3://backbone/repo", tmp_path / "local") == "copy"
    # Not there (yet) or not a directory here: copy, never a link that could dangle.
    assert pipeline_io.export_transfer(str(tmp_path / "missing"), tmp_path / "local") == "copy"
    if Path("/dev/shm").is_dir() and os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev:
        assert pipeline_io.export_transfer("/dev/shm", tmp_path / "local") == "copy"
