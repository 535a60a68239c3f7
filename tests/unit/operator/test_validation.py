"""Semantic validation: each reason to reject a Visit, named."""

from __future__ import annotations

import datetime as dt

from shutterline_operator.core import validation
from tests.unit.operator import objects

CAMERA = frozenset(range(1, 63))


def _check(visit=None, config=..., camera=CAMERA, siblings=(), now=objects.NOW):  # type: ignore[no-untyped-def]
    config = objects.config() if config is ... else config
    return validation.validate(visit or objects.visit(), config, camera, siblings, now)


def test_valid_visit() -> None:
    assert _check() is None


def test_no_prompt_config() -> None:
    rejection = _check(config=None)
    assert rejection is not None and rejection.reason == "UnknownInstrument"
    assert "SimDECam" in rejection.message


def test_unknown_camera() -> None:
    assert _check(camera=None).reason == "UnknownInstrument"


def test_detector_not_in_camera() -> None:
    rejection = _check(objects.visit(detectors=[1, 63, 99]))
    assert rejection is not None and rejection.reason == "UnknownDetector"
    assert "spec.detectors" in rejection.message and "63, 99" in rejection.message


def test_deadline_passed() -> None:
    rejection = _check(now=objects.NOW + dt.timedelta(minutes=5))
    assert rejection is not None and rejection.reason == "DeadlinePassed"


def test_duplicate_visit_id_rejects_the_later_one() -> None:
    older = objects.visit("first")
    older["metadata"]["creationTimestamp"] = "2026-03-01T03:12:00Z"
    rejection = _check(objects.visit("second"), siblings=[older])
    assert rejection is not None and rejection.reason == "DuplicateVisit"
    assert "'first'" in rejection.message
    # The older one itself is fine, and a rejected duplicate blocks nobody.
    assert _check(older, siblings=[objects.visit("second")]) is None
    older["status"] = {"phase": "Rejected"}
    assert _check(objects.visit("second"), siblings=[older]) is None


def test_all_detectors_when_omitted() -> None:
    spec = objects.visit()["spec"]
    del spec["detectors"]
    assert validation.detectors_of(spec, CAMERA) == list(range(1, 63))
