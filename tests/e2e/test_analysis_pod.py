"""``shutterline pod analyze`` as the operator runs it, after a visit's prompt pods.

On the backbone (S3 + PostgreSQL, `tests.e2e.backbone`) and a real Kafka broker: both
detectors of the night's last visit go through ``pod precache`` and ``pod run`` (exporting
what the analysis reads) and their alert relays (``shutterline relay``, which publishes the
metrics records); then ``pod analyze`` runs as a process. The QA records must be in the
repository and on the metrics topic, the termination message must carry the summary, the
values must agree with the simulator's truth, and ``shutterline report`` must write a night
report whose every plot renders in Chromium.

Tolerances against the truth (``night.yaml``), chosen on the backbone night (seed 11,
1024 x 2048, both visits; measured: FWHM +1.8 to +2.0 %, zero point within 0.004 mag,
depth 0.02 mag shallow, sky + read noise +3 %): the FWHM within 5 % (adaptive moments of the
simulator's double-Gaussian PSF read about 2 % wide), the zero point within 0.03 mag, the
5-sigma depth within 0.15 mag, the sky within 6 % of sky plus read noise squared.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from shutterline.butler import names, repo
from shutterline.pipeline import analyze
from tests.e2e import relay_harness
from tests.unit.analysis import browser

pytestmark = [pytest.mark.s3, pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow]

_SHUTTERLINE = [sys.executable, "-m", "shutterline.cli.main"]


def _run(
    cmd: list[str], env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_SHUTTERLINE, *cmd], env=env, capture_output=True, text=True, timeout=timeout
    )


def _process_detector(
    backbone: Any, scratch: Path, spec: dict[str, Any], detector: int, topics: tuple[str, str, str]
) -> None:
    """One prompt pod: precache, run (exporting the analysis inputs), then its relay.

    ``topics``: the broker, the alert topic, the metrics topic. The pod itself is given no
    broker, so it does not wait for a relay; the relay then runs as the pod's sidecar would
    once the pipeline is done, and publishes the alerts and the detector's metrics record.
    """
    visit = int(spec["visitId"])
    scratch.mkdir(parents=True)
    env = backbone.pod_env(visit, detector, scratch, spec)
    env["SHUTTERLINE_EXPORT"] = ",".join(analyze.NEEDED_EXPORTS)
    done = _run(["pod", "precache"], env, 300)
    assert done.returncode == 0, done.stdout + done.stderr
    proc = subprocess.Popen(
        [*_SHUTTERLINE, "pod", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        time.sleep(1.0)
        backbone.land(visit, detector)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")[-5000:]
    relay = relay_harness.relay_env(
        scratch / "spool",
        topics[0],
        topics[1],
        SHUTTERLINE_METRICS_TOPIC=topics[2],
        SHUTTERLINE_VISIT_SPEC=env["SHUTTERLINE_VISIT_SPEC"],
        SHUTTERLINE_DETECTORS=env["SHUTTERLINE_DETECTORS"],
        JOB_COMPLETION_INDEX=env["JOB_COMPLETION_INDEX"],
        POD_NAME=env["POD_NAME"],
    )
    sent = subprocess.run(
        [*_SHUTTERLINE, "relay"], env=relay, capture_output=True, text=True, timeout=300
    )
    assert sent.returncode == 0, sent.stdout + sent.stderr


def _analysis_env(
    backbone: Any, spec: dict[str, Any], scratch: Path, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHUTTERLINE_")}
    env.update(backbone.env())
    env.update(
        {
            "SHUTTERLINE_VISIT_SPEC": json.dumps(spec),
            "SHUTTERLINE_DETECTORS": ",".join(str(d) for d in spec["detectors"]),
            "TESTBED_TERMINATION_MESSAGE_PATH": str(scratch / "analysis-termination-log"),
            **extra,
        }
    )
    return env


def _qa_on_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    found: dict[str, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                if len(found) >= 3:
                    break
                continue
            record = json.loads(message.value() or b"{}")
            if record.get("kind") == "qa":
                found[(message.key() or b"").decode()] = record
    finally:
        consumer.close()
    return found


def _mean_square(per_amp: dict[str, float]) -> float:
    return sum(v * v for v in per_amp.values()) / len(per_amp)


@pytest.fixture(scope="module")
def analysed(
    backbone: Any, kafka_broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The last visit processed by its prompt pods and relays, then ``pod analyze``."""
    work = tmp_path_factory.mktemp("analysis")
    entry = backbone.visits[-1]
    visit = int(entry["visit"])
    spec = backbone.visit_spec(visit)
    alerts = relay_harness.unique_topic("alerts")
    metrics = relay_harness.unique_topic("metrics")
    relay_harness.create_topics(kafka_broker.bootstrap, alerts, metrics)
    topics = (kafka_broker.bootstrap, alerts, metrics)
    try:
        for detector in spec["detectors"]:
            _process_detector(backbone, work / f"pod-{detector}", spec, int(detector), topics)
    finally:
        for detector in spec["detectors"]:
            backbone.withdraw(visit, int(detector))
    env = _analysis_env(
        backbone,
        spec,
        work,
        SHUTTERLINE_KAFKA_BOOTSTRAP=kafka_broker.bootstrap,
        SHUTTERLINE_METRICS_TOPIC=metrics,
    )
    t0 = time.perf_counter()
    done = _run(["pod", "analyze"], env)
    seconds = time.perf_counter() - t0
    return {
        "visit": visit,
        "spec": spec,
        "done": done,
        "seconds": seconds,
        "message": json.loads((work / "analysis-termination-log").read_text()),
        "topic": _qa_on_topic(kafka_broker.bootstrap, metrics),
        "work": work,
    }


def test_analysis_pod_writes_its_records_and_termination_message(
    analysed: dict[str, Any], backbone: Any
) -> None:
    done, visit = analysed["done"], analysed["visit"]
    assert done.returncode == 0, done.stdout + done.stderr
    message = analysed["message"]
    assert message["status"] == "succeeded" and message["exitCode"] == 0
    assert set(message["qa"]) >= {"fwhm", "zeroPoint", "limitingMag", "diaCount", "sky"}
    assert all(message["qa"][k] is not None for k in ("fwhm", "zeroPoint", "limitingMag"))
    assert message["report"].startswith("s3://") and str(visit) in message["report"]
    butler = repo.open_repo(backbone.repo)
    run = names.qa_run(visit)
    detectors = sorted(int(d) for d in analysed["spec"]["detectors"])
    qa = butler.query_datasets(names.QA, collections=run, explain=False)
    assert sorted(int(r.dataId["detector"]) for r in qa) == detectors
    (ref,) = butler.query_datasets(names.QA_VISIT, collections=run, explain=False)
    stored = butler.get(ref)
    assert stored["visit"] == visit and stored["detectors"] == detectors
    assert stored["fwhm"] == pytest.approx(message["qa"]["fwhm"], abs=1e-3)
    # The same records on the metrics topic, beside the prompt pods' own.
    topic = analysed["topic"]
    assert set(topic) == {str(visit), *(f"{visit}_{d}" for d in detectors)}
    assert topic[str(visit)]["level"] == "visit" and topic[str(visit)]["fwhm"] == stored["fwhm"]
    for record in (butler.get(r) for r in qa):
        # The prompt pods' metrics records were found: stage timings are in.
        assert record["missing"] == [], record["missing"]
        assert record["timing"]["criticalPathSeconds"] > 0
        assert {"isr", "subtract"} <= set(record["timing"]["stages"])
    assert stored["timing"]["latencySeconds"] is not None


def test_analysis_values_agree_with_the_simulated_truth(
    analysed: dict[str, Any], backbone: Any
) -> None:
    night = yaml.safe_load((backbone.night / "night.yaml").read_text())
    truth = next(v for v in night["visits"] if int(v["visit"]) == analysed["visit"])
    # Read noise per amplifier: a pixel's variance carries its amplifier's squared.
    read_var = {int(d["ccdnum"]): _mean_square(d["read_noise"]) for d in night["detectors"]}
    butler = repo.open_repo(backbone.repo)
    run = names.qa_run(analysed["visit"])
    for ref in butler.query_datasets(names.QA, collections=run, explain=False):
        r = butler.get(ref)
        assert r["fwhm"] == pytest.approx(truth["seeing_fwhm_arcsec"], rel=0.05), r
        assert r["zeroPoint"] == pytest.approx(truth["zeropoint_mag"], abs=0.03), r
        depth = 31.4 - 2.5 * math.log10(5 * truth["point_source_sigma_njy"])
        assert r["limitingMag"] == pytest.approx(depth, abs=0.15), r
        sky = truth["sky_e_per_px"] + read_var[int(r["detector"])]
        assert r["sky"] == pytest.approx(sky, rel=0.06), r
        assert r["nPsfStars"] >= 10 and r["nPhotometric"] >= 10
        assert 0 < r["astromScatter"] < 200  # mas; reference positions carry 10 mas errors


def test_night_report_from_the_repository_renders(
    analysed: dict[str, Any], backbone: Any, chromium: Any
) -> None:
    from shutterline.analysis import report

    butler = repo.open_repo(backbone.repo)
    (ref,) = butler.query_datasets(
        names.QA_VISIT, collections=names.qa_run(analysed["visit"]), explain=False
    )
    night = butler.get(ref)["night"]
    out = analysed["work"] / "report.html"
    done = _run(
        ["report", "--night", night, "--repo", backbone.repo, "--out", str(out)],
        {**os.environ, **backbone.env()},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    plots = browser.check_rendered(chromium, out, analysed["work"])
    assert [p["id"] for p in plots] == [pid for pid, _, _ in report.PLOTS]
    for plot in plots:
        assert plot["complete"] and plot["naturalWidth"] > 300, plot
        assert plot["distinct"] > 50 and plot["dark"] > 0.002, plot


def test_analysis_of_a_visit_nothing_was_exported_for_fails_permanently(
    backbone: Any, tmp_path: Path
) -> None:
    spec = backbone.visit_spec(int(backbone.visits[-1]["visit"]), visitId=999999)
    done = _run(["pod", "analyze"], _analysis_env(backbone, spec, tmp_path))
    assert done.returncode == 65, done.stdout + done.stderr
    message = json.loads((tmp_path / "analysis-termination-log").read_text())
    assert message["status"] == "failed" and message["exitCode"] == 65
    assert "calexp" in message["reason"] and "999999" in message["reason"]
