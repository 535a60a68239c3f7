"""Prompt latency with the analysis Jobs on and off, competing for the same nodes (KWOK).

Run: ``.venv/bin/python tests/benchmarks/bench_analysis_priority.py [--quick] [--rounds 3]
[--visits 10] [--detectors 4] [--every 2.0] [--nodes 2] [--cpus 4] [--analysis-s 12]
[--analysis-cpus 2]``.

A test-bed control plane without a node agent, ``--nodes`` KWOK nodes of ``--cpus`` CPUs, the
operator as a process with its own service account, and one PromptConfig whose prompt pods
request one CPU each (``shutterline-prompt``-like class, value 1000) under a built-in queue
limit of the whole cluster's CPUs. The cluster is the concurrency limit that makes them
compete: every visit's analysis pod (requesting ``--analysis-cpus``, running ``--analysis-s``,
far longer than a prompt pod) stays on the nodes while the next visits arrive, one every
``--every`` s.

Variants, interleaved round by round in the same run (every Visit of a round is deleted and
its pods gone before the next round starts):

- ``off``: analysis disabled (the baseline);
- ``on``: analysis as shipped: the built-in queue's gate releases an analysis Job only into
  what the prompt Jobs and a reserve of one visit leave of the limit (each analysis pod
  counting ``--analysis-cpus`` detectors), suspends the newest when prompt work needs the
  room, and the pods run at the low, never-preempting class (value -100), so the scheduler
  preempts them for prompt pods where the gate is late;
- ``flat``: the control, analysis at the prompt pods' own priority and not gated
  (``slots: 0``): prompt pods then wait for analysis pods to finish, which shows the
  measurement can see competition.

Reported per variant: Visit created -> every prompt pod running (placed and started: where
a preemption costs), and -> its prompt Job done (every index has an outcome), median and
p90; the ratio of the medians to ``off``; analysis pods placed and preempted; visits whose
QA summary reached ``status.analysis``. Target: ``on`` / ``off`` about 1 (prompt latency
unchanged with analysis on); ``flat`` / ``off`` well above 1.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the sys.path set-up that makes tests/ importable)
import argparse
import contextlib
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.benchmarks import _results
from tests.benchmarks import bench_operator_scale as scale
from tests.e2e import operatorbed
from tests.testbed import kwok
from tests.testbed.k8s import cluster

NAMESPACE = scale.NAMESPACE
CLASSES = {"bench-prompt": 1000, "bench-analysis": -100}
QA = {"fwhm": 1.1, "zeroPoint": 31.4, "limitingMag": 23.8}
COMMAND = ".venv/bin/python tests/benchmarks/bench_analysis_priority.py"


class Timeline(scale.Timeline):
    """The operator-scale timeline, with analysis Jobs kept out of the prompt Jobs' times."""

    def __init__(self) -> None:
        super().__init__()
        self.analysed: set[str] = set()
        #: When every prompt pod of the visit had been placed and started (or had ended).
        self.job_running: dict[str, float] = {}

    def job(self, kind: str, obj: dict[str, Any], now: float) -> None:
        """Record a prompt Job event; an analysis Job's is not the prompt's."""
        if (obj["metadata"].get("labels") or {}).get("shutterline.io/work") == "analysis":
            return
        super().job(kind, obj, now)
        owners = obj["metadata"].get("ownerReferences") or []
        status = obj.get("status") or {}
        started = sum(int(status.get(k) or 0) for k in ("ready", "succeeded", "failed"))
        if owners and kind != "DELETED" and started >= int(obj["spec"].get("completions") or 1):
            with self.lock:
                self.job_running.setdefault(owners[0]["name"], now)

    def visit(self, kind: str, obj: dict[str, Any], now: float) -> None:
        """Record a Visit event, and whether its QA summary arrived."""
        super().visit(kind, obj, now)
        if ((obj.get("status") or {}).get("analysis") or {}).get("qa"):
            with self.lock:
                self.analysed.add(obj["metadata"]["name"])


def config(variant: str, limit: int, args: argparse.Namespace) -> dict[str, Any]:
    """The PromptConfig of one variant (``off``, ``on``, ``flat``)."""
    analysis = {
        "enabled": variant != "off",
        "priorityClassName": "bench-prompt" if variant == "flat" else "bench-analysis",
        "resources": {"requests": {"cpu": str(args.analysis_cpus)}},
        # In the built-in queue's units: a prompt pod requests one CPU, so one detector.
        "slots": 0 if variant == "flat" else args.analysis_cpus,
        "backoffLimit": 10,
        # KWOK runs the pod this long and hands its main container this termination message.
        "podAnnotations": {
            "kwok.shutterline.io/run-duration": f"{args.analysis_s}s",
            "kwok.shutterline.io/message": json.dumps({"qa": QA, "report": "s3://bench/qa"}),
        },
    }
    return operatorbed.make_config(
        NAMESPACE,
        concurrency={"detectors": limit},
        ttlSecondsAfterFinished=30,
        priorityClassName="bench-prompt",
        resources={"pipeline": {"requests": {"cpu": "1"}}},
        analysis=analysis,
        debug=operatorbed.stand_in("true"),
    )


def run_round(
    bed: cluster.Cluster, timeline: Timeline, args: argparse.Namespace, name: str
) -> list[str]:
    """Apply ``--visits`` Visits one every ``--every`` s; wait for their prompt Jobs."""
    names = []
    for index in range(args.visits):
        visit = f"{name}-{index}"
        body = operatorbed.make_visit(
            visit, NAMESPACE, detectors=list(range(1, args.detectors + 1)), deadlineSeconds=3600
        )
        operatorbed.apply(bed, body)
        names.append(visit)
        time.sleep(args.every)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        with timeline.lock:
            if all(n in timeline.job_complete for n in names):
                break
        time.sleep(0.5)
    # Then the analyses (their QA summaries reach the status), bounded.
    deadline = time.monotonic() + 3 * args.analysis_s + 10
    while not name.startswith("off") and time.monotonic() < deadline:
        with timeline.lock:
            if set(names) <= timeline.analysed:
                break
        time.sleep(0.5)
    return names


def analysis_pods(bed: cluster.Cluster, prefix: str) -> tuple[int, int]:
    """(analysis pods of the round's visits, preemptions of them): the pods' Events, which
    outlive the preempted pods (``Scheduled`` once per placement, ``Preempted`` per victim)."""
    events = operatorbed.items(bed, "events", NAMESPACE)
    ours = [
        e
        for e in events
        if e["involvedObject"].get("kind") == "Pod"
        and e["involvedObject"].get("name", "").startswith(prefix)
        and "-analysis-" in e["involvedObject"].get("name", "")
    ]
    placed = {e["involvedObject"]["name"] for e in ours if e["reason"] == "Scheduled"}
    return len(placed), sum(e["reason"] == "Preempted" for e in ours)


def drain(bed: cluster.Cluster, timeout: float = 120) -> None:
    """Delete every Visit (its Jobs and pods follow) and wait until no pod is left."""
    bed.kubectl("delete", "visits", "--all", "-n", NAMESPACE, "--wait=false")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not operatorbed.items(bed, "pods", NAMESPACE) and not operatorbed.items(
            bed, "jobs", NAMESPACE
        ):
            return
        time.sleep(1)
    print("  (pods still there after the drain bound)", flush=True)


def report(
    timeline: Timeline, rounds: dict[str, list[list[str]]], stats: dict[str, list[int]]
) -> int:
    """Print per-variant latencies and ratios; record the rows; 1 if a visit never finished."""
    latency: dict[str, list[float]] = {}
    missing = 0
    for variant, groups in rounds.items():
        names = [n for group in groups for n in group]
        values = [
            timeline.job_complete[n] - timeline.visit_added[n]
            for n in names
            if n in timeline.job_complete and n in timeline.visit_added
        ]
        missing += len(names) - len(values)
        latency[variant] = values
        placed = [
            timeline.job_running[n] - timeline.visit_added[n]
            for n in names
            if n in timeline.job_running and n in timeline.visit_added
        ]
        print(f"  {variant:4s}: Visit -> every prompt pod running {scale.summary(placed)}")
        analysed = len(set(names) & timeline.analysed)
        pods, hit = stats.get(variant, [0, 0])
        print(
            f"  {variant:4s}: Visit -> prompt Job done {scale.summary(values)}, p90 "
            f"{scale.percentile(values, 0.9):.3f} s; analysis pods {pods} ({hit} preempted); "
            f"QA summaries in the status {analysed}/{len(names)}"
        )
    base = statistics.median(latency["off"]) if latency.get("off") else float("nan")
    rows = []
    for variant in ("on", "flat"):
        if latency.get(variant):
            ratio = statistics.median(latency[variant]) / base
            print(f"  median {variant} / off: {ratio:.2f}")
            against = "about 1 (unchanged)" if variant == "on" else "control: well above 1"
            rows.append((f"prompt latency, analysis {variant} / off", f"{ratio:.2f}", against))
    _results.record("bench_analysis_priority", [(f, v, a, COMMAND) for f, v, a in rows])
    print(f"  visits whose prompt Job never finished: {missing}")
    return 1 if missing else 0


def run(work: Path, args: argparse.Namespace) -> int:
    """Start the bed, KWOK and the operator; run the interleaved rounds; report."""
    bed = cluster.start(work / "k8s", nodes=0)
    parts: list[Any] = []
    try:
        capacity = {"cpu": str(args.cpus), "memory": "64Gi", "pods": "110"}
        parts.append(kwok.start(bed, work / "kwok", args.nodes, capacity, False, 200, args.run_ms))
        limit = args.nodes * args.cpus
        parts.append(scale.install(bed, work, limit))
        operatorbed.apply(bed, *(operatorbed.priority_class(*c) for c in CLASSES.items()))
        timeline = Timeline()
        scale.start_watches(bed, timeline)
        rounds: dict[str, list[list[str]]] = {"off": [], "on": [], "flat": []}
        stats: dict[str, list[int]] = {}
        for number in range(args.rounds):
            for variant in rounds:
                operatorbed.apply(bed, config(variant, limit, args))
                time.sleep(1)  # the operator's cache takes the new PromptConfig from its watch
                started = time.monotonic()
                names = run_round(bed, timeline, args, f"{variant}-r{number}")
                counted = stats.setdefault(variant, [0, 0])
                for i, count in enumerate(analysis_pods(bed, f"{variant}-r{number}-")):
                    counted[i] += count
                rounds[variant].append(names)
                print(f"round {number} {variant}: {time.monotonic() - started:.0f} s", flush=True)
                drain(bed)
        return report(timeline, rounds, stats)
    finally:
        for part in reversed(parts):
            with contextlib.suppress(Exception):
                part.stop()
        bed.stop()


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, return non-zero if a visit never finished."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 8 visits")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each variant")
    parser.add_argument("--visits", type=int, default=10, help="visits per round")
    parser.add_argument("--detectors", type=int, default=4)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between visits")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=4, help="CPUs per KWOK node")
    parser.add_argument("--run-ms", type=int, default=2000, help="prompt pods' run time")
    parser.add_argument("--analysis-s", type=float, default=12.0, help="analysis pods' run")
    parser.add_argument("--analysis-cpus", type=int, default=2, help="analysis pods' request")
    parser.add_argument("--timeout", type=float, default=180, help="bound of a round, s")
    parser.add_argument("--keep", type=Path, help="keep the test bed's state and logs here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.visits = 1, 8
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(
        f"{args.nodes} KWOK nodes x {args.cpus} CPUs; {args.visits} visits of {args.detectors} "
        f"detectors every {args.every} s per round; prompt pods {args.run_ms} ms, analysis "
        f"{args.analysis_s} s; {args.rounds} rounds of off/on/flat",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as tmp:
        return run(args.keep or Path(tmp), args)


if __name__ == "__main__":
    sys.exit(main())
