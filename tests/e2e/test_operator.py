"""The operator on the real test bed, with stand-in worker containers (busybox shell
scripts through the PromptConfig's ``debug.commands``): what the orchestration does
regardless of the pipeline. The tests with the real pipeline are in test_operator_pipeline.py.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from tests.e2e.operatorbed import (
    apply,
    items,
    make_config,
    make_visit,
    stand_in,
    visit_status,
    wait_phase,
)
from tests.e2e.test_testbed_k8s import get, wait_for
from tests.testbed.k8s import cluster

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

Bed = tuple[cluster.Cluster, Any]
MARKER = "mkdir -p /scratch/work; touch /scratch/work/raw-arrived"
# The variables the env ConfigMap and the pod's annotations give (a missing one fails the index).
CHECK_ENV = (
    '[ "$SHUTTERLINE_REPO" = s3://backbone/repo ] && [ "$SHUTTERLINE_DETECTORS" = 1,2 ] && '
    'case "$SHUTTERLINE_VISIT_SPEC" in *visitId*) true;; *) false;; esac || exit 65'
)
RECORD = (
    'echo \'{"status": "succeeded", "diaSources": 5, "alerts": 3, '
    '"lastAlertAt": "2030-01-01T00:00:00Z"}\' > /dev/termination-log'
)


def _config(bed: Bed, namespace: str, pipeline: str, **spec: Any) -> None:
    apply(bed[0], make_config(namespace, debug=stand_in(pipeline), **spec))


def _jobs(bed: Bed, namespace: str) -> list[dict[str, Any]]:
    return items(bed[0], "jobs", namespace, "app.kubernetes.io/managed-by=shutterline-operator")


def test_malformed_visit_is_refused_naming_the_field(
    operator_bed: Bed, prompt_namespace: str
) -> None:
    bad = make_visit("bad", prompt_namespace, exposureTime=-1, band="q")
    result = apply(operator_bed[0], bad, check=False)
    assert result.returncode != 0
    assert "spec.exposureTime" in result.stderr
    assert "spec.band" in result.stderr
    # CEL rules run once the schema holds.
    no_placeholder = make_visit("bad1", prompt_namespace, rawUri="s3://backbone/raw.fits")
    result = apply(operator_bed[0], no_placeholder, check=False)
    assert "spec.rawUri" in result.stderr and "{detector} placeholder" in result.stderr
    missing = make_visit("bad2", prompt_namespace)
    del missing["spec"]["observationStart"]
    result = apply(operator_bed[0], missing, check=False)
    assert "spec.observationStart: Required value" in result.stderr
    assert get(operator_bed[0], "visit", "bad", prompt_namespace) is None


def test_semantically_invalid_visits_are_rejected_without_a_job(
    operator_bed: Bed, prompt_namespace: str
) -> None:
    bed, ns = operator_bed[0], prompt_namespace
    apply(bed, make_visit("no-config", ns))
    status = wait_phase(bed, "no-config", ns, ("Rejected",), 30)
    assert status["reason"] == "UnknownInstrument"
    _config(operator_bed, ns, "true")
    apply(bed, make_visit("no-such-ccd", ns, detectors=[1, 99]))
    status = wait_phase(bed, "no-such-ccd", ns, ("Rejected",), 30)
    assert status["reason"] == "UnknownDetector"
    assert "no detector 99" in status["message"]
    validated = next(c for c in status["conditions"] if c["type"] == "Validated")
    assert (validated["status"], validated["reason"]) == ("False", "UnknownDetector")
    apply(bed, make_visit("too-late", ns, observationStart="2020-01-01T00:00:00Z"))
    assert wait_phase(bed, "too-late", ns, ("Rejected",), 30)["reason"] == "DeadlinePassed"
    labels = get(bed, "visit", "no-such-ccd", ns)["metadata"]["labels"]  # type: ignore[index]
    assert labels["shutterline.io/phase"] == "Rejected"
    events = items(bed, "events", ns, "")
    assert any(e["reason"] == "Rejected" and "UnknownDetector" in e["message"] for e in events)
    assert _jobs(operator_bed, ns) == []


def test_stand_in_visit_goes_through_the_phases_with_counts_and_a_root_span(
    operator_bed: Bed, prompt_namespace: str, otlp_receiver: Any
) -> None:
    bed, ns = operator_bed[0], prompt_namespace
    pipeline = f"{CHECK_ENV}; sleep 2; {MARKER}; sleep 1.5; {RECORD}"
    telemetry = {"enabled": False, "otlpEndpoint": otlp_receiver.endpoint}
    _config(operator_bed, ns, pipeline, telemetry=telemetry)
    apply(bed, make_visit("phases", ns, detectors=[1, 2]))
    seen: list[str] = []
    status = wait_phase(bed, "phases", ns, ("Succeeded", "Failed"), 90, seen)
    assert status["phase"] == "Succeeded", status
    assert "WaitingForRaws" in seen and "Processing" in seen
    assert seen.index("WaitingForRaws") < seen.index("Processing")
    assert status["progress"] == "2/2"
    assert status["alerts"] == 6 and status["diaSources"] == 10
    assert status["detectorStates"] == {"Succeeded": "1-2"}
    assert status["detectorAlerts"] == [3, 3]
    assert "detectors" not in status  # full entries only for failed or retried detectors
    assert len(status["traceId"]) == 32
    # The phase label and the root span follow the status patch.
    visit = wait_for(
        lambda: (
            (v := get(bed, "visit", "phases", ns))
            and v["metadata"]["labels"].get("shutterline.io/phase") == "Succeeded"
            and v["metadata"]["annotations"].get("shutterline.io/trace-recorded") == "true"
            and v
        ),
        10,
        "the phase label and the recorded root span",
    )
    printed = bed.kubectl("get", "vis", "phases", "-n", ns).stdout
    assert "Succeeded" in printed and "2/2" in printed
    # The root span, with the ids the pods were given, reaches Jaeger when the visit ends.
    traceparent = visit["metadata"]["annotations"]["shutterline.io/traceparent"]
    spans = otlp_receiver.spans(status["traceId"], timeout=20)
    roots = [s for s in spans if s["name"] == "visit"]
    assert len(roots) == 1, spans
    root = roots[0]
    assert root["span_id"] == traceparent.split("-")[2]
    assert root["parent_span_id"] is None
    assert root["service_name"] == "shutterline-operator"
    assert root["attributes"]["shutterline.phase"] == "Succeeded"
    assert root["end_time_unix_nano"] > root["start_time_unix_nano"]
    pod = items(bed, "pods", ns, "shutterline.io/visit=phases")[0]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["TRACEPARENT"] == traceparent
    # An Event per phase; the first names the Job (no Event of its own).
    events = [e for e in items(bed, "events", ns, "") if e["involvedObject"]["name"] == "phases"]
    reasons = [
        e["reason"] for e in sorted(events, key=lambda e: e["metadata"]["creationTimestamp"])
    ]
    assert "Succeeded" in reasons and "JobCreated" not in reasons, reasons
    assert any(e["message"].startswith("Job phases (2 detectors): ") for e in events), events
    # The shared env came from one ConfigMap, owned by the PromptConfig.
    (env_map,) = items(bed, "configmaps", ns, "app.kubernetes.io/managed-by=shutterline-operator")
    assert env_map["data"]["SHUTTERLINE_REPO"] == "s3://backbone/repo"
    assert env_map["metadata"]["ownerReferences"][0]["kind"] == "PromptConfig"


def test_exit_65_fails_only_its_index_without_retries(
    operator_bed: Bed, prompt_namespace: str
) -> None:
    bed, ns = operator_bed[0], prompt_namespace
    fail_second = (
        f'{MARKER}; if [ "$JOB_COMPLETION_INDEX" = 1 ]; then '
        'echo \'{"status": "failed", "reason": "corrupt input: raw"}\' > /dev/termination-log;'
        f" exit 65; fi; {RECORD}"
    )
    _config(operator_bed, ns, fail_second, retries={"backoffLimitPerIndex": 3})
    apply(bed, make_visit("partial", ns, detectors=[4, 5]))
    status = wait_phase(bed, "partial", ns, ("PartiallySucceeded", "Succeeded", "Failed"), 90)
    assert status["phase"] == "PartiallySucceeded", status
    failed = status["detectors"]["5"]
    assert (failed["state"], failed["attempts"], failed["exitCode"]) == ("Failed", 1, 65)
    assert failed["reason"] == "corrupt input: raw"
    assert status["detectorStates"] == {"Succeeded": "4", "Failed": "5"}
    assert "detector 5: corrupt input: raw" in status["message"]
    pods = items(bed, "pods", ns, "batch.kubernetes.io/job-completion-index=1")
    assert len(pods) == 1  # FailIndex at once: no second attempt


def test_deadline_exceeded_is_timed_out(operator_bed: Bed, prompt_namespace: str) -> None:
    bed, ns = operator_bed[0], prompt_namespace
    _config(operator_bed, ns, f"{MARKER}; sleep 60")
    apply(bed, make_visit("slow", ns, deadlineSeconds=6))
    status = wait_phase(bed, "slow", ns, ("TimedOut", "Succeeded", "Failed"), 60)
    assert status["phase"] == "TimedOut", status
    assert status["reason"] == "DeadlineExceeded"
    assert status["detectors"]["1"]["state"] == "Failed"
    job = _jobs(operator_bed, ns)[0]
    # FailureTarget comes first; Failed once the pod has terminated.
    ended = [c for c in job["status"]["conditions"] if c["type"] in ("FailureTarget", "Failed")]
    assert ended and {c["reason"] for c in ended} == {"DeadlineExceeded"}


def test_operator_killed_mid_visit_resumes_without_a_second_job(
    operator_bed: Bed, prompt_namespace: str
) -> None:
    bed, operator = operator_bed
    ns = prompt_namespace
    _config(operator_bed, ns, f"{MARKER}; sleep 6; {RECORD}")
    apply(bed, make_visit("survivor", ns, detectors=[1, 2]))
    before = wait_phase(bed, "survivor", ns, ("Processing",), 60)
    job_uid = _jobs(operator_bed, ns)[0]["metadata"]["uid"]
    operator.kill()
    time.sleep(1)
    operator.start()
    status = wait_phase(bed, "survivor", ns, ("Succeeded", "Failed"), 90)
    assert status["phase"] == "Succeeded", status
    jobs = _jobs(operator_bed, ns)
    assert [j["metadata"]["uid"] for j in jobs] == [job_uid]
    assert status["traceId"] == before["traceId"]
    assert status["alerts"] == 6
    assert status["detectorStates"] == {"Succeeded": "1-2"}
    assert "detectors" not in status  # one attempt each: no full entries


def test_three_visits_over_a_limit_of_one_run_one_at_a_time_in_priority_order(
    operator_bed: Bed, prompt_namespace: str
) -> None:
    bed, ns = operator_bed[0], prompt_namespace
    _config(operator_bed, ns, f"{MARKER}; sleep 1.5; {RECORD}", concurrency={"detectors": 1})
    apply(bed, make_visit("blocker", ns, priority=0))
    wait_for(
        lambda: (
            visit_status(bed, "blocker", ns).get("phase")
            in ("Processing", "WaitingForRaws", "Caching")
        ),
        60,
        "the blocker to run",
    )
    apply(bed, *(make_visit(f"p{p}", ns, priority=p) for p in (1, 9, 5)))
    queued = wait_phase(bed, "p1", ns, ("Queued",), 30)
    assert "detectors running" in queued["message"]
    for name in ("blocker", "p9", "p5", "p1"):
        wait_phase(bed, name, ns, ("Succeeded", "Failed", "TimedOut"), 120)
    jobs = {j["metadata"]["name"]: j["status"] for j in _jobs(operator_bed, ns)}
    order = sorted(jobs, key=lambda n: jobs[n]["startTime"])
    assert order == ["blocker", "p9", "p5", "p1"]
    for first, second in itertools.pairwise(order):
        assert jobs[first]["completionTime"] <= jobs[second]["startTime"], (first, second)
    assert 'shutterline_queue_depth{instrument="SimDECam"' in operator_bed[1].metrics()


def test_deleting_a_visit_removes_its_job_and_pods(
    operator_bed: Bed, prompt_namespace: str
) -> None:
    bed, ns = operator_bed[0], prompt_namespace
    _config(operator_bed, ns, f"{MARKER}; sleep 120")
    apply(bed, make_visit("doomed", ns, detectors=[1, 2]))
    wait_phase(bed, "doomed", ns, ("Processing",), 60)
    assert len(items(bed, "pods", ns, "shutterline.io/visit=doomed")) == 2
    bed.kubectl("delete", "visit", "doomed", "-n", ns, "--wait=false")
    wait_for(lambda: not _jobs(operator_bed, ns), 90, "the Job to be garbage-collected")
    wait_for(
        lambda: not items(bed, "pods", ns, "shutterline.io/visit=doomed"), 90, "the pods to go"
    )


def _env_maps(bed: Bed, namespace: str) -> set[str]:
    found = items(
        bed[0], "configmaps", namespace, "app.kubernetes.io/managed-by=shutterline-operator"
    )
    return {m["metadata"]["name"] for m in found}


def test_env_config_map_deleted_by_hand_comes_back_and_an_unused_old_one_goes(
    operator_bed: Bed, prompt_namespace: str
) -> None:
    bed, ns = operator_bed[0], prompt_namespace
    _config(operator_bed, ns, f"{MARKER}; {RECORD}", rawWaitSeconds=600)
    apply(bed, make_visit("first", ns))
    wait_phase(bed, "first", ns, ("Succeeded",), 60)
    (first,) = _env_maps(operator_bed, ns)
    bed.kubectl("delete", "configmap", first, "-n", ns)
    wait_for(lambda: _env_maps(operator_bed, ns) == {first}, 15, "the ConfigMap made again")
    # A new generation: a second ConfigMap; the first stays while Job "first" refers to it.
    _config(operator_bed, ns, f"{MARKER}; {RECORD}", rawWaitSeconds=300)
    apply(bed, make_visit("second", ns))
    wait_phase(bed, "second", ns, ("Succeeded",), 60)
    (second,) = _env_maps(operator_bed, ns) - {first}
    assert _env_maps(operator_bed, ns) == {first, second}
    bed.kubectl("delete", "visit", "first", "-n", ns, "--wait=false")
    wait_for(lambda: _env_maps(operator_bed, ns) == {second}, 60, "the unused ConfigMap to go")


def test_metrics_and_health(operator_bed: Bed) -> None:
    text = operator_bed[1].metrics()
    for name in (
        "shutterline_visits",
        "shutterline_reconcile_seconds",
        "shutterline_visit_to_job_seconds",
        "shutterline_api_request_seconds",
    ):
        assert name in text
    assert operator_bed[1].ready()
