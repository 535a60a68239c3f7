"""Replaying a night: announcements from schedule.yaml and the camera landing raws on time."""

from __future__ import annotations

import datetime
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from shutterline.pipeline import task
from shutterline.simulate import play, rawfile

RAW_URI = "file://{root}/incoming/{{visit}}/raw_{{visit}}_{{detector:02d}}.fits"


def _night(tmp_path: Path, n_visits: int = 3) -> tuple[Path, list[dict[str, Any]]]:
    """A schedule of ``n_visits`` one minute apart with two detectors' (fake) raws each."""
    visits = []
    for i in range(n_visits):
        entry = {
            "visit": 100010 + i,
            "exposure": 100010 + i,
            "mjd": 61280.2 + i / 1440.0,
            "field": "F01",
            "ra": 10.0 + i,
            "dec": -5.0,
            "band": "r",
            "physical_filter": "r DECam SDSS c0002 6415.0 1480.0",
            "rotation": 0.0,
            "exptime": 30.0,
            "detectors": [28, 35],
        }
        visits.append(entry)
        for detector in entry["detectors"]:
            path = rawfile.raw_path(tmp_path, entry["visit"], detector)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"raw {entry['visit']} {detector}".encode())
    schedule = {"instrument": "SimDECam", "visits": visits}
    (tmp_path / "schedule.yaml").write_text(yaml.safe_dump(schedule))
    return tmp_path / "schedule.yaml", visits


def test_spec_of_a_scheduled_visit(tmp_path: Path) -> None:
    _, visits = _night(tmp_path, 1)
    spec = play.visit_spec(visits[0], "SimDECam", "s3://b/{visit}/{detector}.fits")
    assert spec == task.VisitSpec.from_dict(spec.to_dict())
    assert spec.mjd_tai == pytest.approx(visits[0]["mjd"], abs=1e-8)  # TAI -> UTC -> TAI
    assert spec.physical_filter == visits[0]["physical_filter"]
    assert spec.detectors == (28, 35) and spec.raw_uri_for(35) == "s3://b/100010/35.fits"
    clock = play.ReplayClock(visits[0]["mjd"], start_unix=1.8e9, speed=60.0)
    replayed = play.visit_spec(visits[0], "SimDECam", "s3://b/{visit}/{detector}.fits", clock)
    assert replayed.observation_start.timestamp() == pytest.approx(1.8e9)


def test_camera_lands_each_raw_after_its_exposure(tmp_path: Path) -> None:
    _, visits = _night(tmp_path)
    clock = play.ReplayClock(visits[0]["mjd"], start_unix=time.time(), speed=120.0)
    uri = RAW_URI.format(root=tmp_path)
    landings = play.play(tmp_path, visits, uri, clock, readout_s=2.0)
    assert [(x.visit, x.detector) for x in landings] == [
        (v["visit"], d) for v in visits for d in v["detectors"]
    ]
    for landing in landings:
        entry = next(v for v in visits if v["visit"] == landing.visit)
        # Due at shutter close plus readout, 32 night seconds = 0.27 s at 120x.
        assert landing.due == pytest.approx(clock.wall(entry["mjd"]) + 32.0 / 120.0)
        assert landing.landed >= landing.due
        target = tmp_path / "incoming" / str(landing.visit)
        written = target / f"raw_{landing.visit}_{landing.detector:02d}.fits"
        assert written.read_bytes() == f"raw {landing.visit} {landing.detector}".encode()
    # A minute of night apart at 120x: due 0.5 s apart on the wall clock.
    assert landings[2].due - landings[0].due == pytest.approx(0.5)


def test_camera_refuses_a_night_without_the_raw(tmp_path: Path) -> None:
    _, visits = _night(tmp_path, 1)
    rawfile.raw_path(tmp_path, 100010, 35).unlink()
    clock = play.ReplayClock(visits[0]["mjd"], start_unix=time.time())
    with pytest.raises(FileNotFoundError, match=r"raw_100010_35\.fits"):
        play.play(tmp_path, visits, RAW_URI.format(root=tmp_path), clock)


def test_feed_dry_run_announces_every_visit_ahead(tmp_path: Path) -> None:
    schedule, visits = _night(tmp_path)
    start = "2026-12-01T22:00:00Z"
    out = subprocess.run(
        [sys.executable, "-m", "shutterline.cli.main", "schedule", "feed", str(schedule),
         "--lead-time", "20", "--raw-uri", "s3://b/{visit}/{detector}.fits",
         "--start", start, "--speed", "6", "--namespace", "prompt", "--dry-run"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    manifests = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [m["metadata"] for m in manifests] == [
        {"name": f"visit-{v['visit']}", "namespace": "prompt"} for v in visits
    ]
    specs = [task.VisitSpec.from_dict(m["spec"]) for m in manifests]
    starts = [s.observation_start.timestamp() for s in specs]
    assert starts[0] == datetime.datetime(2026, 12, 1, 22, tzinfo=datetime.UTC).timestamp()
    # One minute of night apart, at 6x: ten seconds apart on the wall clock.
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([10.0, 10.0])
    assert all(
        m["apiVersion"] == "shutterline.io/v1alpha1" and m["kind"] == "Visit" for m in manifests
    )
