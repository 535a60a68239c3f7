"""A pod's task from the operator's environment: the Visit spec, the detector, the raw URI."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from shutterline import exceptions
from shutterline.pipeline import task
from tests import examples

SPEC: dict[str, Any] = examples.visit_spec(detectors=[28, 35])


def _env(spec: Any = SPEC, detectors: str = "28,35", index: str = "1") -> dict[str, str]:
    return {
        task.ENV_SPEC: spec if isinstance(spec, str) else json.dumps(spec),
        task.ENV_DETECTORS: detectors,
        task.ENV_INDEX: index,
    }


def test_task_from_the_operators_environment() -> None:
    job = task.DetectorTask.from_env(_env())
    assert (job.visit, job.detector, job.index) == (100007, 35, 1)
    assert job.raw_uri == "s3://backbone/incoming/100007/raw_100007_35.fits"
    spec = job.spec
    assert spec.boresight == task.Boresight(150.1, -2.3, 0.0)
    assert spec.observation_start == datetime.datetime(
        2026, 3, 1, 3, 12, 45, 123000, tzinfo=datetime.UTC
    )
    assert spec.shutter_close - spec.observation_start == datetime.timedelta(seconds=30)
    # UTC 2026 is 37 s behind TAI.
    utc_mjd = 61100 + (3 * 3600 + 12 * 60 + 45.123) / 86400
    assert spec.mjd_tai == pytest.approx(utc_mjd + 37 / 86400, abs=1e-8)


def test_spec_round_trips_through_its_dict() -> None:
    spec = task.VisitSpec.from_dict(SPEC)
    assert task.VisitSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["observationStart"] == SPEC["observationStart"]


def test_optional_fields_take_the_crds_defaults() -> None:
    minimal = {k: v for k, v in SPEC.items() if k not in ("detectors", "deadlineSeconds")}
    minimal = {**minimal, "boresight": {"ra": 1.0, "dec": 2.0}}
    del minimal["priority"], minimal["physicalFilter"]
    spec = task.VisitSpec.from_dict(minimal)
    assert spec.detectors is None and spec.deadline_seconds == 60.0 and spec.priority == 0
    assert spec.boresight.rotation == 0.0 and spec.physical_filter == "r"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"visitId": None}, "spec.visitId is missing"),
        ({"visitId": "seven"}, "spec.visitId='seven'"),
        ({"visitId": -1}, "negative"),
        ({"boresight": {"ra": 150.0}}, "spec.boresight.dec is missing"),
        ({"boresight": {"ra": 400.0, "dec": 0.0}}, "spec.boresight.ra=400.0"),
        ({"boresight": {"ra": 1.0, "dec": 0.0, "rotation": "x"}}, "spec.boresight.rotation"),
        ({"observationStart": "2026-03-01T03:12:45"}, "has no time zone"),
        ({"observationStart": "yesterday"}, "spec.observationStart"),
        ({"exposureTime": True}, "spec.exposureTime"),
        ({"rawUri": "s3://b/{exposure}.fits"}, "not a template over {visit} and {detector}"),
        ({"detectors": []}, "spec.detectors=[]"),
    ],
)
def test_bad_spec_fields_are_named(change: dict[str, Any], named: str) -> None:
    spec = {**SPEC, **change}
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(exceptions.PermanentError) as info:
        task.DetectorTask.from_env(_env(spec))
    assert task.ENV_SPEC in str(info.value) and named in str(info.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (_env(spec="{not json"), task.ENV_SPEC),
        (_env(spec="[1, 2]"), "must be a JSON object"),
        (
            {task.ENV_DETECTORS: "28", task.ENV_INDEX: "0"},
            f"missing environment variable {task.ENV_SPEC}",
        ),
        (_env(detectors=""), f"missing environment variable {task.ENV_DETECTORS}"),
        (_env(detectors="28,x"), f"{task.ENV_DETECTORS}='28,x'"),
        (_env(index="2"), f"{task.ENV_INDEX}=2 but {task.ENV_DETECTORS} lists 2"),
        (_env(index="one"), f"{task.ENV_INDEX}='one'"),
        (_env(detectors="28,36"), "is not among the spec's detectors"),
    ],
)
def test_bad_variables_are_named(env: dict[str, str], named: str) -> None:
    with pytest.raises(exceptions.PermanentError) as info:
        task.DetectorTask.from_env(env)
    assert named in str(info.value)
    assert info.value.exit_code == exceptions.EXIT_PERMANENT
