"""The worker pod's commands as the operator runs them: processes, environment, raw landing.

``shutterline pod precache`` then ``shutterline pod run`` are started as processes with the
environment the operator's Job sets, against the backbone fixture (S3 + PostgreSQL) whose
science raws have not landed yet.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]

_SHUTTERLINE = [sys.executable, "-m", "shutterline.cli.main"]
#: What `pod run` logs once every input is in memory and it starts waiting for the raw.
_WAITING = "waiting for the raw"


@dataclass
class Pod:
    """One detector's pod, as processes: its environment and its scratch volume."""

    env: dict[str, str]
    scratch: Path
    visit: int
    detector: int
    log: list[str] = field(default_factory=list)

    @property
    def spool(self) -> Path:
        return self.scratch / "spool"

    @property
    def termination(self) -> Path:
        return self.scratch / "termination-log"

    def message(self) -> dict[str, Any]:
        return dict(json.loads(self.termination.read_text()))

    def precache(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_SHUTTERLINE, "pod", "precache"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def start_run(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*_SHUTTERLINE, "pod", "run"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._drain, args=(proc,), daemon=True).start()
        return proc

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.log.append(line)

    def wait_until_waiting(self, proc: subprocess.Popen[str], timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(_WAITING in line for line in self.log):
            assert proc.poll() is None, "pod run ended early:\n" + "".join(self.log)
            assert time.monotonic() < deadline, "pod run never waited:\n" + "".join(self.log)
            time.sleep(0.1)

    def finish(self, proc: subprocess.Popen[str], timeout: float = 300.0) -> int:
        try:
            code = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        time.sleep(0.2)  # the log thread catches up
        if proc.stdout is not None:
            proc.stdout.close()
        return code


def make_pod(backbone: Any, tmp_path: Path, visit: int, detector: int, **env: str) -> Pod:
    """The environment the operator sets on a worker pod (docs/architecture.md)."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()  # the volume, where the kubelet keeps the termination message too
    base = backbone.pod_env(visit, detector, scratch)
    base["SHUTTERLINE_SPANS_PATH"] = str(scratch / "spans.jsonl")
    return Pod({**base, **env}, scratch, visit, detector)


@pytest.fixture
def landed(backbone: Any) -> Iterator[list[tuple[int, int]]]:
    """Raws a test landed; withdrawn afterwards so the next test can wait for them."""
    done: list[tuple[int, int]] = []
    yield done
    for visit, detector in done:
        backbone.withdraw(visit, detector)


def _unix(rfc3339: str) -> float:
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _first(backbone: Any, index: int = 0) -> tuple[int, int]:
    entry = backbone.visits[index]
    return int(entry["visit"]), int(entry["detectors"][0])


def test_prestaged_pod_waits_for_its_raw_then_spools_alerts(
    backbone: Any, tmp_path: Path, landed: list[tuple[int, int]]
) -> None:
    visit, detector = _first(backbone)
    pod = make_pod(backbone, tmp_path, visit, detector)
    cached = pod.precache()
    assert cached.returncode == 0, cached.stdout + cached.stderr
    local = pod.scratch / "work" / f"local-{visit}-{detector}"
    assert (local / "prestaged.json").is_file() and (local / "plan.json").is_file()
    proc = pod.start_run()
    pod.wait_until_waiting(proc)
    time.sleep(0.5)  # the pod is polling: nothing is there yet
    assert not (pod.scratch / "work" / "raw-arrived").exists()
    before_landing = time.time()
    backbone.land(visit, detector)
    landed.append((visit, detector))
    code = pod.finish(proc)
    assert code == 0, "".join(pod.log)
    message = pod.message()
    alerts = sorted(pod.spool.glob(f"{visit}_{detector}_*.alert"))
    assert message["status"] == "succeeded" and message["exitCode"] == 0
    assert message["alerts"] == len(alerts) > 0
    assert message["diaSources"] >= message["alerts"]
    assert {"isr", "subtract", "dia_detect", "alerts", "store"} <= set(message["stages"])
    assert message["rawArrivedAt"] and message["lastAlertAt"]
    assert 0 < message["stageSeconds"] <= message["criticalPathSeconds"]
    assert (pod.scratch / "work" / "raw-arrived").exists()
    done = json.loads((pod.spool / f"{visit}_{detector}.done").read_text())
    assert done == {"status": "succeeded", "alerts": len(alerts)}
    metrics = json.loads((pod.spool / f"{visit}_{detector}.metrics.json").read_text())
    assert metrics["quantities"]["dia_sources"] == message["diaSources"]
    # The pod saw the raw only once it had landed, and its last alert came after that.
    seen = _unix(message["rawArrivedAt"])
    assert before_landing - 0.01 <= seen <= _unix(message["lastAlertAt"])
    assert max(p.stat().st_mtime for p in alerts) <= _unix(message["lastAlertAt"]) + 0.01


def test_raw_that_never_lands_exits_66_with_the_reason(backbone: Any, tmp_path: Path) -> None:
    visit, detector = _first(backbone, 1)
    pod = make_pod(backbone, tmp_path, visit, detector, SHUTTERLINE_RAW_WAIT_S="1.5")
    assert pod.precache().returncode == 0
    proc = pod.start_run()
    code = pod.finish(proc)
    assert code == 66, "".join(pod.log)
    message = pod.message()
    assert message["exitCode"] == 66 and message["status"] == "failed"
    assert "did not land within 1.5 s" in message["reason"]
    assert backbone.raw_uri_for(visit, detector) in message["reason"]
    assert json.loads((pod.spool / f"{visit}_{detector}.done").read_text())["status"] == "failed"
    assert not list(pod.spool.glob("*.alert"))


def test_raw_of_another_visit_at_the_uri_is_permanent(
    backbone: Any, tmp_path: Path, landed: list[tuple[int, int]]
) -> None:
    visit, detector = _first(backbone)
    other, _ = _first(backbone, 1)
    pod = make_pod(backbone, tmp_path, visit, detector)
    assert pod.precache().returncode == 0
    proc = pod.start_run()
    pod.wait_until_waiting(proc)
    backbone.land(visit, detector, path=backbone.raw_path(other, detector))
    landed.append((visit, detector))
    code = pod.finish(proc)
    assert code == 65, "".join(pod.log)
    reason = pod.message()["reason"]
    assert "not the announced one" in reason and f"EXPNUM={other}" in reason, reason
    assert not list(pod.spool.glob("*.alert"))
    assert not (pod.scratch / "work" / "raw-arrived").exists()


def test_bad_visit_spec_is_named_and_permanent(backbone: Any, tmp_path: Path) -> None:
    visit, detector = _first(backbone)
    pod = make_pod(backbone, tmp_path, visit, detector)
    spec = json.loads(pod.env["SHUTTERLINE_VISIT_SPEC"])
    del spec["boresight"]["dec"]
    pod.env["SHUTTERLINE_VISIT_SPEC"] = json.dumps(spec)
    cached = pod.precache()
    assert cached.returncode == 65
    assert "SHUTTERLINE_VISIT_SPEC" in cached.stderr and "boresight.dec" in cached.stderr
    proc = pod.start_run()
    assert pod.finish(proc) == 65
    assert "spec.boresight.dec is missing" in pod.message()["reason"]
