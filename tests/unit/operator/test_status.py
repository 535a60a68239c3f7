"""Folding Job and pod state into Visit.status: phases, per-detector entries, counts."""

from __future__ import annotations

from typing import Any

from shutterline_operator.core import detectors, status
from tests.unit.operator import objects
from tests.unit.operator.objects import condition, job, pod

DETECTORS = [1, 2, 3]


def _fold(j: dict[str, Any] | None, pods: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return status.fold(objects.visit(), j, pods, DETECTORS, objects.NOW, **kw)


def _record(alerts: int, last: str = "2026-03-01T03:13:25.500Z") -> dict[str, Any]:
    return {
        "status": "succeeded",
        "diaSources": alerts + 2,
        "alerts": alerts,
        "rawArrivedAt": "2026-03-01T03:13:16Z",
        "lastAlertAt": last,
        "stages": {"isr": 0.4, "diff": 1.5},
    }


def test_no_job_is_pending() -> None:
    assert _fold(None, [])["phase"] == "Pending"


def test_suspended_job_is_queued_with_the_reason() -> None:
    slot = status.QueueSlot(2, "queued at position 2: 4/4 detectors running")
    folded = _fold(job(suspend=True), [], queue=slot)
    assert folded["phase"] == "Queued"
    assert folded["message"] == slot.reason
    assert folded["queue"] == {"position": 2, "reason": slot.reason}
    admitted = next(c for c in folded["conditions"] if c["type"] == "Admitted")
    assert admitted["status"] == "False"


def test_caching_then_waiting_for_raws_then_processing() -> None:
    caching = _fold(job(), [pod(0, phase="Pending", pipeline="waiting", precache="running")])
    assert caching["phase"] == "Caching"
    assert caching["detectorStates"] == {"Caching": "1", "Pending": "2-3"}
    assert "detectors" not in caching  # nothing failed or retried: no full entries
    waiting = _fold(job(), [pod(0, ready=False)])
    assert waiting["phase"] == "WaitingForRaws"
    processing = _fold(job(), [pod(0, ready=True), pod(1, ready=False)])
    assert processing["phase"] == "Processing"
    assert processing["detectorStates"] == {
        "Processing": "1",
        "WaitingForRaws": "2",
        "Pending": "3",
    }
    assert processing["progress"] == "0/3"


def test_a_running_visits_phase_never_moves_back() -> None:
    visit = objects.visit()
    visit["status"] = {"phase": "Processing"}
    caching = pod(1, phase="Pending", pipeline="waiting", precache="running")
    later_pods = [pod(0, phase="Succeeded", pipeline="terminated"), caching]
    folded = status.fold(visit, job(completed="0"), later_pods, DETECTORS, objects.NOW)
    assert folded["phase"] == "Processing"
    assert folded["detectorStates"]["Caching"] == "2"
    visit["status"] = {"phase": "WaitingForRaws"}
    assert status.fold(visit, job(), [pod(0, ready=True)], DETECTORS, objects.NOW)["phase"] == (
        "Processing"
    )


def test_succeeded_counts_alerts_and_latency() -> None:
    pods = [
        pod(0, phase="Succeeded", pipeline="terminated", record=_record(5)),
        pod(
            1,
            phase="Succeeded",
            pipeline="terminated",
            record=_record(7, "2026-03-01T03:13:27.123Z"),
        ),
        pod(2, phase="Succeeded", pipeline="terminated", record=_record(0)),
    ]
    done = job(completed="0-2", conditions=[condition("Complete", "CompletionsReached")])
    folded = _fold(done, pods)
    assert folded["phase"] == "Succeeded"
    assert folded["progress"] == "3/3"
    assert folded["alerts"] == 12
    assert folded["diaSources"] == 18
    assert folded["detectorStates"] == {"Succeeded": "1-3"}
    assert folded["detectorAlerts"] == [5, 7, 0]
    assert folded["detectorDiaSources"] == [7, 9, 2]
    assert folded["lastAlertAt"] == "2026-03-01T03:13:27.123Z"
    assert "detectors" not in folded
    full = _fold(done, pods, shape="map")["detectors"]  # the shape before, for comparisons
    assert full["2"]["alerts"] == 7
    assert full["2"]["stages"] == {"isr": 0.4, "diff": 1.5}
    # Shutter close 03:13:15.123; last alert 03:13:27.123.
    assert folded["latencySeconds"] == 12.0
    assert folded["latency"] == "12.0s"
    assert folded["finishedAt"] == "2026-03-01T03:13:20Z"
    assert folded["startedAt"] == "2026-03-01T03:12:31Z"
    assert folded["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert folded["message"] == "3 detectors, 12 alerts"


def test_one_index_failing_65_is_partial_success_with_its_reason() -> None:
    bad = {"status": "failed", "reason": "missing input: no 'flat' dataset", "exitCode": 65}
    pods = [
        pod(0, phase="Succeeded", pipeline="terminated", record=_record(3)),
        pod(1, phase="Failed", pipeline="terminated", exit_code=65, record=bad),
        pod(2, phase="Succeeded", pipeline="terminated", record=_record(1)),
    ]
    ended = job(completed="0,2", failed="1", conditions=[condition("Failed", "FailedIndexes")])
    folded = _fold(ended, pods)
    assert folded["phase"] == "PartiallySucceeded"
    entry = folded["detectors"]["2"]
    assert entry["state"] == "Failed"
    assert entry["exitCode"] == 65
    assert entry["attempts"] == 1
    assert entry["reason"] == "missing input: no 'flat' dataset"
    assert "detector 2: missing input" in folded["message"]
    assert folded["alerts"] == 4


def test_every_index_failing_is_failed() -> None:
    pods = [pod(i, phase="Failed", pipeline="terminated", exit_code=66) for i in range(3)]
    ended = job(failed="0-2", conditions=[condition("Failed", "FailedIndexes")])
    folded = _fold(ended, pods)
    assert folded["phase"] == "Failed"
    assert folded["detectors"]["1"]["reason"] == "Error (exit code 66)"


def test_deadline_exceeded_is_timed_out_and_unfinished_detectors_fail() -> None:
    ended = job(completed="0", conditions=[condition("Failed", "DeadlineExceeded")])
    pods = [pod(0, phase="Succeeded", pipeline="terminated", record=_record(1)), pod(1)]
    folded = _fold(ended, pods)
    assert folded["phase"] == "TimedOut"
    assert folded["detectors"]["2"]["state"] == "Failed"
    assert folded["detectors"]["2"]["reason"] == "DeadlineExceeded"
    assert folded["detectorStates"] == {"Succeeded": "1", "Failed": "2-3"}


def test_retried_pod_counts_attempts_and_keeps_the_last_reason() -> None:
    first = pod(0, phase="Failed", pipeline="terminated", exit_code=137, name="p-a")
    second = pod(0, ready=True, name="p-b", created="2026-03-01T03:12:50Z")
    folded = _fold(job(), [second, first])
    entry = folded["detectors"]["1"]
    assert entry["attempts"] == 2
    assert entry["state"] == "Processing"
    assert entry["pod"] == "p-b"
    assert _fold(job(), [first])["detectors"]["1"]["state"] == "Retrying"


def test_log_tail_termination_message_becomes_the_reason() -> None:
    crashed = pod(0, phase="Failed", pipeline="terminated", exit_code=1)
    crashed["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = (
        "Traceback (most recent call last):\nValueError: boom"
    )
    entry = _fold(job(failed="0"), [crashed])["detectors"]["1"]
    assert entry["reason"] == "ValueError: boom"


def test_fold_is_stable_and_keeps_condition_times() -> None:
    visit = objects.visit()
    first = status.fold(visit, job(), [pod(0)], DETECTORS, objects.NOW)
    visit["status"] = first
    later = objects.NOW.replace(minute=20)
    second = status.fold(visit, job(), [pod(0)], DETECTORS, later)
    assert second == first


def test_terminal_status_survives_the_job_going_away() -> None:
    visit = objects.visit()
    visit["status"] = {"phase": "Succeeded", "alerts": 9, "progress": "3/3"}
    assert status.fold(visit, None, [], DETECTORS, objects.NOW) == visit["status"]


def test_counts_survive_pods_removed_after_success() -> None:
    visit = objects.visit()
    visit["status"] = {"detectors": {"1": {"state": "Succeeded", "alerts": 4, "attempts": 1}}}
    folded = status.fold(visit, job(completed="0"), [], DETECTORS, objects.NOW)
    assert folded["detectorAlerts"] == [4, 0, 0]  # from a status of the shape before
    visit["status"] = {
        "detectorStates": {"Succeeded": "1-2", "Pending": "3"},
        "detectorAlerts": [4, 6, 0],
        "lastAlertAt": "2026-03-01T03:13:25.123Z",
    }
    folded = status.fold(visit, job(completed="0,1"), [], DETECTORS, objects.NOW)
    assert folded["detectorAlerts"] == [4, 6, 0]
    assert folded["alerts"] == 10
    assert folded["latencySeconds"] == 10.0  # the last alert outlives the pods too


def test_parse_and_format_indexes() -> None:
    assert detectors.parse_indexes("0,2-4,7") == {0, 2, 3, 4, 7}
    assert detectors.parse_indexes(None) == set()
    assert detectors.format_indexes([7, 2, 3, 4, 0, 3]) == "0,2-4,7"
    assert detectors.format_indexes([]) == ""
    assert detectors.parse_indexes(detectors.format_indexes(range(1, 63))) == set(range(1, 63))


def test_only_phase_and_outcomes_are_urgent() -> None:
    assert status.urgent({"phase": "Processing", "detectors": {}})
    assert status.urgent({"finishedAt": "2026-03-01T03:14:00Z"})
    assert not status.urgent({"progress": "1/2", "alerts": 3})
    assert not status.urgent({"detectors": {"1": {"state": "Processing"}}})
    assert not status.urgent({"queue": {"position": 3}, "message": "3rd in the queue"})
