"""Replay of a small night: from a raw landing to its detector's last alert, beside the stages.

Run: ``.venv/bin/python tests/benchmarks/bench_replay.py [--visits 3] [--gap 60] [--lead 45]
[--no-kafka]``.

Starts the test bed's MinIO, PostgreSQL and (unless ``--no-kafka``) Kafka on loopback,
simulates a small night into the S3 + PostgreSQL backbone (`tests.e2e.backbone`), then
replays it on a clock that puts the visits ``--gap`` seconds apart:

- the announcement (what ``shutterline schedule feed`` does for the operator): ``--lead``
  seconds before each visit's shutter opens, every detector's pod starts, as processes
  with the environment the operator's Job sets: ``shutterline pod precache``, then
  ``shutterline pod run`` beside ``shutterline relay`` (the alert-relay sidecar);
- the camera (``shutterline schedule play``'s `shutterline.simulate.play.play`): each raw
  is written at its raw URI when its exposure ends plus the readout.

By default the Visits go to the operator on the Kubernetes test bed (``shutterline schedule
feed``'s code, `tests/benchmarks/replay_operator.py`), which makes the Jobs whose pods the
node agent runs; ``--no-operator`` starts the same pod processes directly at announcement
time instead (no API server in the loop). Per detector: time from the raw landing (the
camera's PUT returned) to the last alert in the spool, beside the stages alone in the same
pod (from its termination message), their difference (all that is left on the critical
path: noticing the raw, fetching and checking it, anything not done before), and with Kafka
the time to the relay's last delivery report. Target: difference < 1 s per detector (median
and worst).
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the sys.path set-up that makes tests/ importable)
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.e2e import backbone as backbone_mod
from tests.testbed import kafka, postgres, s3

from shutterline.simulate import play

_SHUTTERLINE = [sys.executable, "-m", "shutterline.cli.main"]
#: Night seconds between two visits of the simulated schedule (one field, 30-min revisits).
_NIGHT_GAP_S = 1800.0


def _unix(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Pod:
    """One detector's pod as processes: precache, then pipeline beside the relay."""

    def __init__(self, env: dict[str, str], scratch: Path, visit: int, detector: int) -> None:
        self.env, self.scratch, self.visit, self.detector = env, scratch, visit, detector
        self.codes: dict[str, int] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _proc(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.scratch / f"{name}.log", "wb")  # noqa: SIM115  (closed with the pod)
        return subprocess.Popen([*_SHUTTERLINE, *args], env=self.env, stdout=log, stderr=log)

    def _run(self) -> None:
        self.codes["precache"] = self._proc("precache", "pod", "precache").wait()
        if self.codes["precache"]:
            return
        relay = self._proc("relay", "relay") if "SHUTTERLINE_KAFKA_BOOTSTRAP" in self.env else None
        self.codes["pipeline"] = self._proc("pipeline", "pod", "run").wait()
        if relay is not None:
            self.codes["relay"] = relay.wait(timeout=120)

    def message(self) -> dict[str, Any]:
        path = self.scratch / "termination-log"
        return dict(json.loads(path.read_text())) if path.is_file() else {}

    def log_tail(self, name: str) -> str:
        path = self.scratch / f"{name}.log"
        return path.read_text(errors="replace")[-1500:] if path.is_file() else ""


def _announce(
    bb: backbone_mod.Backbone,
    clock: play.ReplayClock,
    lead: float,
    workdir: Path,
    kafka_env: dict[str, str],
) -> list[Pod]:
    """Start every detector's pod ``lead`` seconds before its visit's shutter opens."""
    pods = []
    for entry in bb.visits:
        visit = int(entry["visit"])
        opens = clock.wall(float(entry["mjd"]))
        spec = play.visit_spec(entry, bb.instrument, bb.raw_uri, clock).to_dict()
        time.sleep(max(opens - lead - time.time(), 0.0))
        for detector in entry["detectors"]:
            scratch = workdir / f"pod-{visit}-{detector}"
            scratch.mkdir(parents=True)
            env = {**bb.pod_env(visit, int(detector), scratch, spec), **kafka_env}
            pod = Pod(env, scratch, visit, int(detector))
            pod.thread.start()
            pods.append(pod)
        print(f"  {time.strftime('%H:%M:%S')} announced visit {visit}", flush=True)
    return pods


def _kafka_env(broker: Any) -> dict[str, str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    topics = ("replay-alerts", "replay-metrics")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(t, 3, 1) for t in topics]).values():
        future.result(30)
    return {
        "SHUTTERLINE_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SHUTTERLINE_ALERT_TOPIC": topics[0],
        "SHUTTERLINE_METRICS_TOPIC": topics[1],
        "SHUTTERLINE_RELAY_GIVE_UP_S": "60",
    }


def _row(visit: int, detector: int, message: dict[str, Any], landed: float) -> dict[str, Any]:
    """One detector's figures from its termination message, times from the raw landing (or
    from the pod being ready for it, when it was not in time: ``late_s`` says by how much)."""
    seen, last = _unix(message.get("rawArrivedAt")), _unix(message.get("lastAlertAt"))
    acked = _unix(message.get("ackedAt"))
    stages = message.get("stages", {})
    row: dict[str, Any] = {
        "visit": visit,
        "detector": detector,
        "status": message.get("status", "no message"),
        "alerts": message.get("alerts"),
        "preload_s": stages.get("preload"),
        "raw_s": stages.get("raw"),
        "stage_s": message.get("stageSeconds"),
    }
    if seen is None or last is None:
        return row
    ready = seen - float(stages.get("wait_raw", 0.0))
    start = max(landed, ready)
    row.update(
        late_s=max(ready - landed, 0.0),
        notice_s=seen - start,
        critical_s=last - start,
        overhead_s=last - start - float(row["stage_s"]),
        acked_s=None if acked is None else acked - start,
    )
    return row


def _report(rows: list[dict[str, Any]]) -> None:
    columns = ("visit", "detector", "status", "alerts", "preload_s", "late_s", "notice_s",
               "raw_s", "stage_s", "critical_s", "overhead_s", "acked_s")  # fmt: skip
    print("\n" + " ".join(f"{c:>11}" for c in columns))
    for row in rows:
        cells = [row.get(c) for c in columns]
        print(" ".join(f"{c:>11.3f}" if isinstance(c, float) else f"{c!s:>11}" for c in cells))
    done = [r for r in rows if r.get("overhead_s") is not None]
    if not done:
        print("\nno detector finished: no figures")
        return
    late = [r for r in done if r["late_s"] > 0.0]
    print(f"\n{len(done)} of {len(rows)} detectors succeeded; {len(late)} were not ready when "
          "their raw landed (figures from when they were)")  # fmt: skip
    for key in ("notice_s", "raw_s", "stage_s", "critical_s", "overhead_s", "acked_s"):
        values = [r[key] for r in done if r.get(key) is not None]
        if values:
            print(f"  {key:>11}: median {statistics.median(values):.3f} s, max {max(values):.3f} s")
    overhead = [r["overhead_s"] for r in done]
    ratio = statistics.median(r["critical_s"] for r in done) / statistics.median(
        r["stage_s"] for r in done
    )
    print(
        f"  critical path / stages alone: {ratio:.3f} (median); overhead target < 1 s per "
        "detector: "
        f"{'met' if max(overhead) < 1.0 else 'NOT met'} (worst {max(overhead):.3f} s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument("--gap", type=float, default=60.0, help="wall seconds between visits")
    parser.add_argument("--lead", type=float, default=45.0, help="announcement lead, seconds")
    parser.add_argument("--no-kafka", action="store_true", help="no broker, no relay")
    parser.add_argument(
        "--no-operator",
        action="store_true",
        help="start the pods as plain processes at announcement time instead of through the "
        "operator on the Kubernetes test bed",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(tmp)
        storage, registry = s3.start(work / "s3"), postgres.start(work / "postgres")
        services: list[Any] = [storage, registry]
        try:
            os.environ.update(storage.env())
            kafka_env: dict[str, str] = {}
            if not args.no_kafka:
                services.append(kafka.start(work / "kafka"))
                kafka_env = _kafka_env(services[-1])
            t0 = time.perf_counter()
            bb = backbone_mod.make_backbone(storage, registry, work, visits=args.visits)
            print(f"night of {len(bb.visits)} visits x {len(bb.visits[0]['detectors'])} "
                  f"detectors ready in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
            if args.no_operator:
                return _replay(bb, args, work, kafka_env)
            return _replay_operator(bb, args, work, kafka_env)
        finally:
            for service in reversed(services):
                service.stop()


def _replay(
    bb: backbone_mod.Backbone, args: argparse.Namespace, work: Path, kafka_env: dict[str, str]
) -> int:
    start = time.time() + args.lead + 5.0
    clock = play.ReplayClock(float(bb.visits[0]["mjd"]), start, _NIGHT_GAP_S / args.gap)
    pods: list[Pod] = []
    announcer = threading.Thread(
        target=lambda: pods.extend(_announce(bb, clock, args.lead, work, kafka_env))
    )
    announcer.start()
    landings = play.play(bb.night, bb.visits, bb.raw_uri, clock)
    announcer.join()
    for pod in pods:
        pod.thread.join(timeout=300)
    landed = {(x.visit, x.detector): x.landed for x in landings}
    rows = [
        _row(pod.visit, pod.detector, pod.message(), landed[(pod.visit, pod.detector)])
        for pod in pods
    ]
    _report(rows)
    for pod in pods:
        if pod.codes.get("pipeline") != 0:
            tails = "".join(pod.log_tail(n) for n in ("precache", "pipeline", "relay"))
            print(f"\nvisit {pod.visit} detector {pod.detector}: {pod.codes}\n{tails}")
    return 0 if all(pod.codes.get("pipeline") == 0 for pod in pods) else 1


def _replay_operator(
    bb: backbone_mod.Backbone, args: argparse.Namespace, work: Path, kafka_env: dict[str, str]
) -> int:
    from tests.benchmarks import replay_operator

    t0 = time.perf_counter()
    ob = replay_operator.OperatorBed(work)
    print(f"test bed and operator up in {time.perf_counter() - t0:.0f} s", flush=True)
    try:
        start = time.time() + args.lead + 5.0
        clock = play.ReplayClock(float(bb.visits[0]["mjd"]), start, _NIGHT_GAP_S / args.gap)
        results = replay_operator.replay(ob, bb, clock, args.lead, kafka_env)
    finally:
        ob.stop()
    rows = [_row(*result) for result in results]
    _report(rows)
    return 0 if all(r["status"] == "succeeded" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
