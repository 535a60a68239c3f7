"""Folding the analysis Job into Visit.status: phase, QA summary, report, QAWithinLimits."""

from __future__ import annotations

import json
from typing import Any

from shutterline_operator.core import analysis, qa
from shutterline_operator.engine import analysis as step
from shutterline_operator.engine import cache as vcache
from tests.unit.operator import objects

QA = {
    "fwhm": 1.62,
    "ellipticity": 0.05,
    "zeroPoint": 31.4,
    "zeroPointScatter": 0.021,
    "limitingMag": 23.1,
    "sky": 812.0,
    "astromScatter": 0.04,
    "diaCount": 1234,
    "dipoleFraction": 0.03,
}
REPORT = "s3://backbone/repo/SimDECam/runs/100007/qaVisit_100007.json"


def _job(conditions: list[dict[str, Any]] | None = None, suspend: bool = False) -> Any:
    job = analysis.build_analysis_job(
        objects.visit(), objects.config(analysis={"enabled": True}), [1, 2, 3], objects.TRACEPARENT
    )
    job["metadata"]["uid"] = "uid-analysis"
    job["metadata"]["creationTimestamp"] = "2026-03-01T03:13:30Z"
    job["spec"]["suspend"] = suspend
    job["status"] = {"startTime": "2026-03-01T03:13:31Z", "conditions": conditions or []}
    return job


def _pod(
    phase: str, code: int | None = None, message: Any = None, name: str = "a-1", at: str = "1"
) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {"startedAt": "2026-03-01T03:13:32Z"}}
    if code is not None:
        text = message if isinstance(message, str) else json.dumps(message or {})
        state = {"terminated": {"exitCode": code, "reason": "Error", "message": text}}
    return {
        "metadata": {
            "name": name,
            "namespace": "prompt",
            "creationTimestamp": f"2026-03-01T03:13:3{at}Z",
            "labels": {"batch.kubernetes.io/job-name": "visit-100007-analysis"},
        },
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "analysis", "ready": False, "state": state}],
        },
    }


COMPLETE = [objects.condition("Complete", "", "2026-03-01T03:14:10Z")]
LIMITS = {"fwhm": {"max": 1.4}, "limitingMag": {"min": 23.5}, "zeroPoint": {"min": 31, "max": 32}}


def _fold(job: Any, pods: list[dict[str, Any]], limits: Any = None, status: Any = None) -> Any:
    base = status or {"phase": "Succeeded", "conditions": []}
    return qa.with_analysis(base, job, pods, limits or {}, objects.NOW)


def test_phases_follow_the_job_and_its_pod() -> None:
    assert _fold(_job(suspend=True), [])["analysis"]["phase"] == "Queued"
    assert _fold(_job(), [])["analysis"]["phase"] == "Pending"
    running = _fold(_job(), [_pod("Running")])["analysis"]
    assert (running["phase"], running["pod"], running["attempts"]) == ("Running", "a-1", 1)
    assert running["jobName"] == "visit-100007-analysis"
    assert running["startedAt"] == "2026-03-01T03:13:31Z"


def test_succeeded_carries_the_qa_summary_and_the_report_link() -> None:
    pods = [_pod("Succeeded", 0, {"qa": QA, "report": REPORT})]
    status = _fold(_job(COMPLETE), pods)
    entry = status["analysis"]
    assert entry["phase"] == "Succeeded"
    assert entry["qa"] == QA and entry["report"] == REPORT
    assert entry["finishedAt"] == "2026-03-01T03:14:10Z"
    assert "reason" not in entry
    assert status["phase"] == "Succeeded"  # the visit's own phase is not the analysis'


def test_qa_outside_limits_names_each_value_and_by_how_much() -> None:
    pods = [_pod("Succeeded", 0, {"qa": QA, "report": REPORT})]
    status = _fold(_job(COMPLETE), pods, LIMITS)
    (cond,) = [c for c in status["conditions"] if c["type"] == "QAWithinLimits"]
    assert (cond["status"], cond["reason"]) == ("False", "OutsideLimits")
    assert cond["message"] == (
        'fwhm 1.62" > limit 1.40" by 0.22"; limitingMag 23.10 mag < limit 23.50 mag by 0.40 mag'
    )
    assert cond["lastTransitionTime"] == "2026-03-01T03:12:40Z"


def test_qa_within_limits_is_true_and_unreported_values_are_not_judged() -> None:
    good = {**QA, "fwhm": 1.1, "limitingMag": 24.0}
    del good["zeroPoint"]
    pods = [_pod("Succeeded", 0, {"qa": good, "report": REPORT})]
    status = _fold(_job(COMPLETE), pods, LIMITS)
    (cond,) = [c for c in status["conditions"] if c["type"] == "QAWithinLimits"]
    assert (cond["status"], cond["reason"]) == ("True", "WithinLimits")
    assert cond["message"] == "2 limited values within limits"
    no_limits = _fold(_job(COMPLETE), pods)
    assert no_limits["conditions"][0]["message"] == "no limits set"


def test_counts_and_small_values_are_written_readably() -> None:
    limits = {"diaCount": {"max": 1000}, "dipoleFraction": {"max": 0.01}}
    assert qa.outside_limits(QA, limits) == [
        "diaCount 1234 > limit 1000 by 234",
        "dipoleFraction 0.03 > limit 0.01 by 0.02",
    ]


def test_no_condition_before_the_qa_summary_or_when_the_analysis_failed() -> None:
    running = _fold(_job(), [_pod("Running")], LIMITS)
    assert running["conditions"] == []
    failed = [objects.condition("Failed", "PodFailurePolicy", "2026-03-01T03:14:10Z")]
    record = {"status": "failed", "reason": "missing dataset calexp {visit: 100007}"}
    status = _fold(_job(failed), [_pod("Failed", 65, record)], LIMITS)
    entry = status["analysis"]
    assert (entry["phase"], entry["exitCode"]) == ("Failed", 65)
    assert entry["reason"] == "missing dataset calexp {visit: 100007}"
    assert status["conditions"] == []
    logs = _fold(_job(failed), [_pod("Failed", 1, "Traceback\nValueError: boom")])
    assert logs["analysis"]["reason"] == "ValueError: boom"
    bare = _fold(_job(failed), [_pod("Failed", 137, "")])
    assert bare["analysis"]["reason"] == "Error (exit code 137)"


def test_a_preempted_attempt_is_followed_by_the_next_one() -> None:
    preempted = _pod("Failed", 143, "", name="a-1", at="1")
    again = _pod("Running", name="a-2", at="5")
    first = _fold(_job(), [preempted])["analysis"]
    assert first["exitCode"] == 143
    entry = _fold(_job(), [preempted, again], status={"phase": "Succeeded", "analysis": first})
    entry = entry["analysis"]
    assert (entry["phase"], entry["pod"], entry["attempts"]) == ("Running", "a-2", 2)
    assert "exitCode" not in entry and "reason" not in entry


def test_the_summary_survives_the_job_and_pods_going() -> None:
    pods = [_pod("Succeeded", 0, {"qa": QA, "report": REPORT})]
    done = _fold(_job(COMPLETE), pods, LIMITS)
    again = qa.with_analysis(done, None, [], LIMITS, objects.NOW)
    assert again == done
    assert qa.with_analysis({"phase": "Succeeded"}, None, [], LIMITS, objects.NOW) == {
        "phase": "Succeeded"
    }


def test_only_finite_numbers_reach_the_status() -> None:
    message = '{"qa": {"fwhm": 1.2, "sky": NaN, "band": "r", "ok": true, "n": 3}, "report": 5}'
    entry = _fold(_job(COMPLETE), [_pod("Succeeded", 0, message)])["analysis"]
    assert entry["qa"] == {"fwhm": 1.2, "n": 3}
    assert "report" not in entry


def test_an_analysis_job_is_seen_only_by_the_visit_that_owns_it() -> None:
    cache = vcache.Cache()
    visit = objects.visit()
    cache.put_visit(visit)
    job = _job()
    cache.put_job(job)
    cache.put_pod(_pod("Running"))
    found, pods = step.view(cache, visit)
    assert found is not None and found["metadata"]["name"] == "visit-100007-analysis"
    assert [p["metadata"]["name"] for p in pods] == ["a-1"]
    successor = objects.visit()
    successor["metadata"]["uid"] = "uid-another"
    assert step.view(cache, successor) == (None, [])
