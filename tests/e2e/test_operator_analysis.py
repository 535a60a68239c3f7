"""The analysis Job on the real test bed: launched once a visit's prompt Job has finished,
below the prompt pods' priority, its QA summary folded into ``Visit.status``.

The first tests run shell stand-ins through ``debug.commands`` that honour the analysis pod's
contract (docs/architecture.md): they check the environment they are given and end with the
contract's termination message. The last one runs the real ``shutterline pod analyze`` after
the real prompt pods on the shared backbone night; it is skipped, saying why, while the
pipeline image has no such command.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import test_operator_pipeline as pipeline
from tests.e2e.operatorbed import (
    apply,
    items,
    make_config,
    make_visit,
    priority_class,
    stand_in,
    visit_status,
    wait_phase,
)
from tests.e2e.test_operator import MARKER, RECORD
from tests.e2e.test_testbed_k8s import wait_for
from tests.testbed.k8s import cluster

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

Bed = tuple[cluster.Cluster, Any]
QA = {
    "fwhm": 1.62,
    "ellipticity": 0.05,
    "zeroPoint": 31.4,
    "zeroPointScatter": 0.02,
    "limitingMag": 23.1,
    "sky": 812.5,
    "astromScatter": 0.04,
    "diaCount": 12,
    "dipoleFraction": 0.03,
}
REPORT = "s3://backbone/repo/qa/report.html"
# The analysis stand-in: a JSON list of the visit's detectors, the visit spec, then the
# contract's termination message. Detector list [4] is a slow analysis that fails with 65.
ANALYZE = f"""
case "$SHUTTERLINE_DETECTORS" in
  "[4]") sleep 15; echo '{{"reason": "missing dataset calexp"}}' > /dev/termination-log; exit 65;;
  "["*"]") ;;
  *) echo "{{\\"reason\\": \\"not a JSON list: $SHUTTERLINE_DETECTORS\\"}}" \\
       > /dev/termination-log; exit 65;;
esac
test -n "$SHUTTERLINE_VISIT_SPEC" || exit 65
sleep 1
echo '{json.dumps({"qa": QA, "report": REPORT})}' > /dev/termination-log
"""
CLASSES = {"e2e-prompt": 1000, "e2e-analysis": -10}
LIMITS = {"fwhm": {"max": 1.4}, "limitingMag": {"min": 23.5}, "zeroPoint": {"min": 31.0}}
ANALYSIS_JOB = "shutterline.io/work=analysis"


@pytest.fixture(scope="module")
def priority_classes(operator_bed: Bed) -> Iterator[None]:
    """A high prompt and a low, never-preempting analysis PriorityClass (cluster-scoped)."""
    bed = operator_bed[0]
    apply(bed, *(priority_class(name, value) for name, value in CLASSES.items()))
    yield
    bed.kubectl("delete", "priorityclass", *CLASSES, "--wait=false", check=False)


def _config(bed: Bed, namespace: str, **spec: Any) -> None:
    debug = stand_in(f"{MARKER}; sleep 1; {RECORD}")
    debug["commands"]["analysis"] = ["sh", "-c", ANALYZE]
    analysis = {"enabled": True, "priorityClassName": "e2e-analysis", "limits": LIMITS}
    body = make_config(
        namespace, debug=debug, priorityClassName="e2e-prompt", analysis=analysis, **spec
    )
    apply(bed[0], body)


def _analysis_in(
    bed: cluster.Cluster, name: str, ns: str, phases: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """The Visit's status once its analysis is in one of ``phases``."""

    def reached() -> dict[str, Any] | None:
        status = visit_status(bed, name, ns)
        return status if (status.get("analysis") or {}).get("phase") in phases else None

    return dict(wait_for(reached, timeout, f"the analysis of {ns}/{name} in {phases}"))


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _finished_at(pod: dict[str, Any], container: str) -> dt.datetime:
    statuses = pod["status"].get("containerStatuses") or []
    state = next(s for s in statuses if s["name"] == container)["state"]
    return _time(state["terminated"]["finishedAt"])


def test_analysis_runs_after_the_prompt_pods_and_its_qa_lands_in_the_status(
    operator_bed: Bed, prompt_namespace: str, priority_classes: None
) -> None:
    bed, operator = operator_bed
    ns = prompt_namespace
    _config(operator_bed, ns)
    apply(bed, make_visit("qa", ns, detectors=[1, 2]))
    status = _analysis_in(bed, "qa", ns, ("Succeeded", "Failed"), 120)
    assert status["phase"] == "Succeeded"  # the visit's phase is the prompt pods' alone
    entry = status["analysis"]
    assert entry["phase"] == "Succeeded", entry
    assert entry["qa"] == QA and entry["report"] == REPORT
    assert entry["jobName"] == "qa-analysis" and entry["attempts"] == 1
    (cond,) = [c for c in status["conditions"] if c["type"] == "QAWithinLimits"]
    assert (cond["status"], cond["reason"]) == ("False", "OutsideLimits")
    assert cond["message"] == (
        'fwhm 1.62" > limit 1.40" by 0.22"; limitingMag 23.10 mag < limit 23.50 mag by 0.40 mag'
    )
    # After the prompt pods: created once the last pipeline container had ended.
    prompt = [p for p in items(bed, "pods", ns, "shutterline.io/visit=qa") if _is_prompt(p)]
    (pod,) = items(bed, "pods", ns, ANALYSIS_JOB)
    assert len(prompt) == 2
    last = max(_finished_at(p, "pipeline") for p in prompt).replace(microsecond=0)
    assert _time(pod["metadata"]["creationTimestamp"]) >= last
    # Below the prompt pods' priority; the visit's environment, every detector as JSON.
    assert [p["spec"]["priority"] for p in prompt] == [1000, 1000]
    assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == ("e2e-analysis", -10)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert json.loads(env["SHUTTERLINE_DETECTORS"]) == [1, 2]
    assert json.loads(env["SHUTTERLINE_VISIT_SPEC"])["visitId"] == status_visit_id(bed, ns)
    assert env["TRACEPARENT"].split("-")[1] == status["traceId"]
    printed = bed.kubectl("get", "vis", "qa", "-n", ns, "-o", "wide").stdout
    assert "Succeeded" in printed.splitlines()[1] and "False" in printed.splitlines()[1]
    events = items(bed, "events", ns)
    assert any(e["reason"] == "QAOutsideLimits" and "fwhm" in e["message"] for e in events)
    # Created once: a restarted operator finds it and makes no second one.
    job_uid = items(bed, "jobs", ns, ANALYSIS_JOB)[0]["metadata"]["uid"]
    operator.kill()
    operator.start()
    time.sleep(3)
    assert [j["metadata"]["uid"] for j in items(bed, "jobs", ns, ANALYSIS_JOB)] == [job_uid]
    assert wait_phase(bed, "qa", ns, ("Succeeded",), 10)["analysis"] == entry


def _is_prompt(pod: dict[str, Any]) -> bool:
    return "shutterline.io/work" not in (pod["metadata"].get("labels") or {})


def status_visit_id(bed: cluster.Cluster, ns: str) -> int:
    visit = json.loads(bed.kubectl("get", "vis", "qa", "-n", ns, "-o", "json").stdout)
    return int(visit["spec"]["visitId"])


def test_a_running_analysis_yields_queue_capacity_and_its_failure_is_reported(
    operator_bed: Bed, prompt_namespace: str, priority_classes: None
) -> None:
    bed, ns = operator_bed[0], prompt_namespace
    _config(operator_bed, ns, concurrency={"detectors": 1})
    apply(bed, make_visit("slow-qa", ns, detectors=[4]))
    _analysis_in(bed, "slow-qa", ns, ("Running",), 60)
    # One detector of capacity: the next visit's prompt pod gets it, the analysis gives way
    # (suspended) and runs again once the prompt pod is done.
    apply(bed, make_visit("next", ns, detectors=[5]))
    _analysis_in(bed, "slow-qa", ns, ("Queued",), 30)
    wait_phase(bed, "next", ns, ("Succeeded",), 60)
    status = _analysis_in(bed, "slow-qa", ns, ("Succeeded", "Failed"), 90)
    entry = status["analysis"]
    assert (entry["phase"], entry["exitCode"]) == ("Failed", 65), entry
    assert entry["reason"] == "missing dataset calexp"
    assert status["phase"] == "Succeeded"
    assert not [c for c in status["conditions"] if c["type"] == "QAWithinLimits"]
    events = items(bed, "events", ns)
    warning = [e for e in events if e["reason"] == "AnalysisFailed"]
    assert warning and warning[0]["type"] == "Warning"
    assert "missing dataset calexp" in warning[0]["message"]
    # The next visit's analysis waited for the capacity and then ran.
    assert _analysis_in(bed, "next", ns, ("Succeeded",), 60)["analysis"]["qa"] == QA


@pytest.fixture
def real_ns(
    operator_bed: Bed, prompt_namespace: str, backbone: Any, otlp_receiver: Any
) -> dict[str, Any]:
    """The namespace test_operator_pipeline.py runs the real pipeline pods in."""
    return pipeline.pipeline_namespace(operator_bed[0], prompt_namespace, backbone, otlp_receiver)


@pytest.mark.s3
@pytest.mark.postgres
@pytest.mark.kafka
@pytest.mark.skipif(
    not pipeline._has_command("pod", "analyze"),
    reason="`shutterline pod analyze` (the analysis pod's command) is not in this checkout yet",
)
def test_real_analysis_after_real_prompt_pods_puts_its_qa_in_the_status(
    operator_bed: Bed,
    real_ns: dict[str, Any],
    backbone: Any,
    kafka_broker: Any,
    schema_registry: Any,
    priority_classes: None,
) -> None:
    bed, ns = operator_bed[0], real_ns["ns"]
    spec = real_ns["config"]["spec"]
    pipeline.with_kafka(real_ns["config"], kafka_broker, schema_registry)
    spec["export"] = ["calexp", "calexp_background", "difference_image", "src", "dia_source"]
    spec["priorityClassName"] = "e2e-prompt"
    spec["analysis"] = {
        "enabled": True,
        "priorityClassName": "e2e-analysis",
        "limits": {"fwhm": {"max": 30.0}, "limitingMag": {"min": 10.0}},
    }
    apply(bed, real_ns["config"])
    visit = int(backbone.visits[0]["visit"])
    body = pipeline._visit(backbone, ns, "analysed", visit)
    apply(bed, body)
    wait_phase(bed, "analysed", ns, ("WaitingForRaws",), 240)
    for detector in body["spec"]["detectors"]:
        backbone.land(visit, detector)
    try:
        status = _analysis_in(bed, "analysed", ns, ("Succeeded", "Failed"), 600)
    finally:
        for detector in body["spec"]["detectors"]:
            backbone.withdraw(visit, detector)
    entry = status["analysis"]
    if entry["phase"] != "Succeeded":
        (pod,) = items(bed, "pods", ns, ANALYSIS_JOB)[-1:]
        pytest.fail(f"{entry}\n{bed.container_log(pod, 'analysis')[-3000:]}")
    assert status["phase"] == "Succeeded"
    for name in ("fwhm", "zeroPoint", "limitingMag"):
        assert isinstance(entry["qa"].get(name), int | float), entry
    assert entry["report"]
    (cond,) = [c for c in status["conditions"] if c["type"] == "QAWithinLimits"]
    assert cond["status"] in ("True", "False") and cond["message"]
    prompt = [p for p in items(bed, "pods", ns, "shutterline.io/visit=analysed") if _is_prompt(p)]
    last = max(_finished_at(p, "pipeline") for p in prompt).replace(microsecond=0)
    (pod,) = items(bed, "pods", ns, ANALYSIS_JOB)[-1:]
    assert _time(pod["metadata"]["creationTimestamp"]) >= last
