"""Where a detector's inputs come from: pre-cached and read through the pre-cache's plan, or
read straight from the central repository, the stages get the same inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shutterline.pipeline import io as pipeline_io
from shutterline.telemetry import stages
from tests.unit.butler import sameinputs
from tests.unit.pipeline.conftest import SmallNight

pytestmark = pytest.mark.slow


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
    sameinputs.assert_same_inputs(direct, cached)
    # Pre-cached already (a restarted detector): planned again on the local repository alone.
    rec = stages.StageRecorder()
    again, _ = pipeline_io.load_inputs(settings, visit, detector, rec)
    assert "precache" not in rec.seconds
    sameinputs.assert_same_inputs(direct, again)


def test_exports_hardlink_only_within_one_file_system(tmp_path: Path) -> None:
    (tmp_path / "central").mkdir()
    (tmp_path / "local").mkdir()
    assert pipeline_io.export_transfer(str(tmp_path / "central"), tmp_path / "local") == "hardlink"
    assert pipeline_io.export_transfer("s3://backbone/repo", tmp_path / "local") == "copy"
    # Not there (yet) or not a directory here: copy, never a link that could dangle.
    assert pipeline_io.export_transfer(str(tmp_path / "missing"), tmp_path / "local") == "copy"
    if Path("/dev/shm").is_dir() and os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev:
        assert pipeline_io.export_transfer("/dev/shm", tmp_path / "local") == "copy"
