"""What one Job POST costs, by what is sent and asked back: direct creates, no operator.

Run: ``.venv/bin/python tests/benchmarks/bench_job_post.py [--quick] [--jobs 100]
[--rounds 5] [--threads 16]``.

A test-bed control plane without nodes. Each round creates, for every arm of `ARMS` in an
order rotated per round, ``--jobs`` suspended Jobs of 62 detectors from ``--threads`` threads
at once (a burst's creators), through the operator's own client (`kube.Api`), built by the
operator's builder for a PromptConfig with Kafka and telemetry (four containers), then deletes
them. Per arm: bytes sent and answered per Job, the client's wall time per POST (median) and
its CPU per POST (the creating thread's, median: serialising, TLS, decoding the answer), and
the API server's own time per Job POST (``apiserver_request_duration_seconds``, mean over the
round); medians over the rounds and the ratio to ``inline`` (every variable in every
container, the whole object answered: the operator before). ``--quick``: 40 Jobs, 3 rounds.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the sys.path set-up that makes tests/ importable)
import argparse
import dataclasses
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "operator"))

from tests.e2e import operatorbed
from tests.testbed import apicounts
from tests.testbed.k8s import cluster

from shutterline_operator.adapters import kube
from shutterline_operator.core import builders

NAMESPACE = "jobpost"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclasses.dataclass(frozen=True)
class Arm:
    """What a Job POST sends and asks for."""

    env_map: bool  # shared env in a ConfigMap, large per-Visit values in annotations
    ignore: bool  # ?fieldValidation=Ignore
    metadata_only: bool  # Accept: PartialObjectMetadata


ARMS = {
    "inline": Arm(False, False, False),
    "ignore": Arm(False, True, False),
    "metadata-only": Arm(False, False, True),
    "env-map": Arm(True, False, False),
    "all": Arm(True, True, True),
    "adopted": Arm(True, False, True),  # what the operator sends (no Ignore)
}


@dataclasses.dataclass
class Round:
    """One arm's burst: per-POST wall and CPU (s), bytes, the API server's mean (s)."""

    wall: list[float]
    cpu: list[float]
    sent: int
    answered: int
    server: float


def prompt_config() -> dict[str, Any]:
    """A production-shaped PromptConfig: Kafka, telemetry, settings, export."""
    config = operatorbed.make_config(
        NAMESPACE,
        kafka={"bootstrap": "kafka:9092", "alertTopic": "alerts", "metricsTopic": "metrics"},
        telemetry={"enabled": True, "otlpEndpoint": "http://jaeger:4318", "hz": 4},
        resources={"pipeline": {"requests": {"cpu": "1", "memory": "2Gi"}}},
        export=["calexp", "diffim"],
        settings={"SHUTTERLINE_LOG_LEVEL": "INFO"},
    )
    config["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001"
    return config


def job_body(index: int, arm: Arm, config: dict[str, Any], tag: str) -> dict[str, Any]:
    """The operator's Job for Visit ``index`` in ``arm`` (owner: a made-up Visit uid)."""
    visit = operatorbed.make_visit(
        f"post-{tag}-{index:04d}",
        NAMESPACE,
        visitId=200000 + index,
        detectors=list(range(1, 63)),
        deadlineSeconds=86400,
    )
    visit["metadata"]["uid"] = f"00000000-0000-0000-0000-{index:012d}"
    env_map = builders.env_config_map(config) if arm.env_map else None
    now = dt.datetime.now(dt.UTC)
    return builders.build_job(visit, config, list(range(1, 63)), TRACEPARENT, now, env_map)


def burst(
    bed: cluster.Cluster, api: kube.Api, arm: Arm, tag: str, jobs: int, threads: int
) -> Round:
    """Create ``jobs`` Jobs of ``arm`` at once, then delete them."""
    config = prompt_config()
    bodies = [job_body(i, arm, config, tag) for i in range(jobs)]
    wall: list[float] = []
    cpu: list[float] = []
    answered: list[int] = []
    lock = threading.Lock()

    def create(body: dict[str, Any]) -> None:
        started, used = time.perf_counter(), time.thread_time()
        created = api.create(
            "jobs", body, skip_validation=arm.ignore, metadata_only=arm.metadata_only
        )
        spent, busy = time.perf_counter() - started, time.thread_time() - used
        assert created is not None, f"Job {body['metadata']['name']} existed"
        with lock:
            wall.append(spent)
            cpu.append(busy)
            answered.append(len(json.dumps(created)))

    before = apicounts.scrape(bed, "none-")
    with futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, bodies))
    after = apicounts.scrape(bed, "none-")
    spent = apicounts.delta(before, after, "seconds").get(("POST", "jobs"), 0.0)
    timed = apicounts.delta(before, after, "timed").get(("POST", "jobs"), 1.0)
    bed.kubectl("delete", "jobs", "--all", "-n", NAMESPACE, "--wait=true", "--timeout=120s")
    sent = statistics.median(len(json.dumps(b)) for b in bodies)
    return Round(wall, cpu, int(sent), int(statistics.median(answered)), spent / timed)


def report(rounds: dict[str, list[Round]]) -> None:
    """Medians over the rounds, and the ratio to ``inline``."""

    def figures(name: str) -> tuple[float, float, float, int, int]:
        rs = rounds[name]
        return (
            statistics.median(r.server for r in rs),
            statistics.median(statistics.median(r.wall) for r in rs),
            statistics.median(statistics.median(r.cpu) for r in rs),
            rs[0].sent,
            rs[0].answered,
        )

    base = figures("inline")
    print(
        f"{'arm':14s} {'sent B':>7s} {'answer B':>8s} {'server s':>9s} {'ratio':>6s}"
        f" {'wall s':>7s} {'ratio':>6s} {'client CPU ms':>13s} {'ratio':>6s}"
    )
    for name in rounds:
        server, wall, cpu, sent, answered = figures(name)
        print(
            f"{name:14s} {sent:7d} {answered:8d} {server:9.4f} {server / base[0]:6.2f}"
            f" {wall:7.4f} {wall / base[1]:6.2f} {cpu * 1e3:13.2f} {cpu / base[2]:6.2f}"
        )
    print("  per round, the API server's mean per POST (s):")
    for name, rs in rounds.items():
        print(f"    {name:14s} " + " ".join(f"{r.server:.4f}" for r in rs))


def run(work: Path, args: argparse.Namespace) -> None:
    """Start the bed, warm up, then the interleaved rounds."""
    bed = cluster.start(work / "k8s", nodes=0)
    try:
        bed.kubectl("create", "namespace", NAMESPACE)
        os.environ["KUBECONFIG"] = str(bed.kubeconfig)
        api = kube.Api(kube.connect(args.threads * 2))
        config = prompt_config()
        api.create("configmaps", builders.env_config_map(config))
        burst(bed, api, ARMS["inline"], "warm", args.jobs, args.threads)
        rounds: dict[str, list[Round]] = {name: [] for name in ARMS}
        names = list(ARMS)
        for index in range(args.rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            for name in order:
                one = burst(bed, api, ARMS[name], f"{index}-{name}", args.jobs, args.threads)
                rounds[name].append(one)
                print(
                    f"  round {index} {name:14s} server {one.server:.4f} s/POST, wall median"
                    f" {statistics.median(one.wall):.4f} s",
                    flush=True,
                )
        report(rounds)
    finally:
        bed.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="Jobs per arm and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=16, help="POSTs in flight at once")
    parser.add_argument("--quick", action="store_true", help="40 Jobs, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.rounds = 40, 3
    with tempfile.TemporaryDirectory(prefix="bench-job-post-") as work:
        run(Path(work), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
