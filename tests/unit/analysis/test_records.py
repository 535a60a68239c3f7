"""QA records: JSON-ready values, the visit's aggregation, the pod's task and message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shutterline import exceptions
from shutterline.analysis import records
from shutterline.pipeline import analyze

_SPEC = {
    "instrument": "SimDECam",
    "visitId": 100007,
    "band": "r",
    "boresight": {"ra": 150.1, "dec": -2.3},
    "observationStart": "2026-03-01T03:12:45.123Z",
    "exposureTime": 30.0,
    "rawUri": "s3://backbone/incoming/{visit}/raw_{visit}_{detector:02d}.fits",
}


def test_jsonable_makes_numpy_plain_and_nan_null() -> None:
    value = {"a": np.float32(1.5), "b": np.array([[1, 2]]), "c": float("nan"), "d": (np.inf,)}
    assert records.jsonable(value) == {"a": 1.5, "b": [[1, 2]], "c": None, "d": [None]}
    json.dumps(records.jsonable(value), allow_nan=False)


def test_night_is_the_utc_date_twelve_hours_earlier() -> None:
    # 2026-03-02 03:00 UTC is still the night that began on the evening of 2026-03-01.
    assert records.night_of(61101.125) == "2026-03-01"
    assert records.night_of(61101.6) == "2026-03-02"


def _detector(det: int, fwhm: float | None, dia: int, dipoles: float) -> dict[str, object]:
    return {
        "detector": det,
        "band": "r",
        "night": "2026-03-01",
        "fwhm": fwhm,
        "zeroPoint": 26.7 + det / 1000,
        "diaCount": dia,
        "diaExpected": 10.0,
        "dipoleFraction": dipoles,
        "missing": [] if fwhm is not None else ["calexp"],
    }


def test_visit_record_takes_medians_sums_and_weights() -> None:
    dets = [_detector(1, 1.0, 10, 0.5), _detector(2, 1.2, 30, 0.1), _detector(3, None, 0, 0.0)]
    visit = records.visit_record(7, dets)
    assert visit["detectors"] == [1, 2, 3]
    assert visit["fwhm"] == pytest.approx(1.1)  # the missing detector does not count
    assert visit["diaCount"] == 40 and visit["diaExpected"] == 30.0
    assert visit["dipoleFraction"] == pytest.approx((5 + 3) / 40)
    assert visit["missing"] == {"3": ["calexp"]}
    assert visit["latencySeconds"] is None and visit["timing"] is None
    summary = records.summary(visit)
    assert list(summary) == list(records.SUMMARY_KEYS)


def test_termination_message_fits_the_kubelet_limit() -> None:
    visit = records.visit_record(7, [_detector(d, 1.0, 5, 0.2) for d in range(1, 63)])
    result = analyze.AnalysisResult(7, qa=records.summary(visit), report="s3://b/" + "x" * 300)
    result.reason = "y" * 10000
    text = result.termination_message()
    assert len(text.encode()) < 4096
    assert json.loads(text)["qa"]["fwhm"] == 1.0


def test_visit_task_reads_the_spec_and_detectors() -> None:
    env = {"SHUTTERLINE_VISIT_SPEC": json.dumps(_SPEC), "SHUTTERLINE_DETECTORS": "28,35"}
    task = analyze.VisitTask.from_env(env)
    assert task.visit == 100007 and task.detectors == (28, 35)
    as_json = analyze.VisitTask.from_env({**env, "SHUTTERLINE_DETECTORS": "[28, 35]"})
    assert as_json.detectors == (28, 35)
    listed = {"SHUTTERLINE_VISIT_SPEC": json.dumps({**_SPEC, "detectors": [1, 2]})}
    assert analyze.VisitTask.from_env(listed).detectors == (1, 2)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "SHUTTERLINE_VISIT_SPEC"),
        ({"SHUTTERLINE_VISIT_SPEC": "{not json"}, "SHUTTERLINE_VISIT_SPEC"),
        ({"SHUTTERLINE_VISIT_SPEC": json.dumps({**_SPEC, "band": ""})}, "spec.band"),
        ({"SHUTTERLINE_VISIT_SPEC": json.dumps(_SPEC)}, "SHUTTERLINE_DETECTORS"),
        (
            {"SHUTTERLINE_VISIT_SPEC": json.dumps(_SPEC), "SHUTTERLINE_DETECTORS": "1,x"},
            "SHUTTERLINE_DETECTORS",
        ),
    ],
)
def test_visit_task_names_what_is_wrong(env: dict[str, str], named: str) -> None:
    with pytest.raises(exceptions.PermanentError, match=named):
        analyze.VisitTask.from_env(env)


def test_run_analysis_without_a_repository_fails_permanently_with_a_message(
    tmp_path: Path,
) -> None:
    message = tmp_path / "termination-log"
    env = {
        "SHUTTERLINE_VISIT_SPEC": json.dumps(_SPEC),
        "TESTBED_TERMINATION_MESSAGE_PATH": str(message),
    }
    assert analyze.run_analysis(env) == exceptions.EXIT_PERMANENT
    written = json.loads(message.read_text())
    assert written["status"] == "failed" and "SHUTTERLINE_REPO" in written["reason"]
    assert written["exitCode"] == 65 and written["qa"] == {} and written["report"] is None


def test_the_expected_dia_rate_is_the_instruments_configuration() -> None:
    assert analyze.analysis_config({}).expected_dia_per_deg2 == 1200.0
    env = {analyze.EXPECTED_DIA_ENV: "350.5"}
    assert analyze.analysis_config(env).expected_dia_per_deg2 == 350.5
    for bad in ("0", "-3", "nan", "inf", "many"):
        with pytest.raises(exceptions.PermanentError, match=analyze.EXPECTED_DIA_ENV):
            analyze.analysis_config({analyze.EXPECTED_DIA_ENV: bad})
