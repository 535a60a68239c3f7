"""What a Visit write costs the API server, by status shape, against the operator's Job create.

Run: ``.venv/bin/python tests/benchmarks/bench_visit_writes.py [--quick] [--visits 40]
[--rounds 3] [--detectors 62]``.

A test-bed control plane (no nodes) with the repository's CRDs. ``--visits`` Visits of
``--detectors`` detectors are given each status (`SHAPES`: a Queued Visit, every detector
``Pending``, and a Succeeded one with each detector's counts, pod, times and stage times;
the per-detector part written by the operator's own `compact.encode`, in the ``map`` shape
of the last session and the ``compact`` default). Then, round after round, interleaved:
the operator's Job create (suspended, built by `builders.build_job`: the baseline), and on
each kind of Visit a status patch (message and progress, as the status loop sends) and a
phase label patch (`Reconciler.publish_phase`'s). Reported per write: the client's round
trip (median over every write) and the CPU time of the control plane's processes (etcd, API
server, controller manager, scheduler) per write (median over the rounds); the object's size
and its managed fields' size; the ratio of each write to the Job create. ``--quick``: 10
Visits, 2 rounds.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the sys.path set-up that makes tests/ importable)
import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kubernetes import client
from tests.benchmarks import _results
from tests.e2e import operatorbed
from tests.testbed.k8s import cluster

from shutterline_operator.core import builders, compact, names

NAMESPACE = "writes"
GROUP = (names.GROUP, names.VERSION, NAMESPACE, "visits")
#: (status shape, detector state): the Visits written.
SHAPES = [(s, state) for state in ("Pending", "Succeeded") for s in compact.SHAPES[::-1]]
_TRACEPARENT = f"00-{'1' * 32}-{'2' * 16}-01"


def entries(detectors: int, state: str) -> dict[str, dict[str, Any]]:
    """Per-detector entries as `detectors.detector_state` makes them."""
    out = {}
    for index in range(detectors):
        entry: dict[str, Any] = {"index": index, "attempts": 0, "state": state}
        if state == "Succeeded":
            stages = {"isr": 0.4, "calibrate": 1.2, "diff": 1.5, "detect": 0.3, "assoc": 0.2}
            entry |= {
                "attempts": 1,
                "pod": f"visit-100007-{index}-abcde",
                "exitCode": 0,
                "diaSources": 40,
                "alerts": 3,
                "rawArrivedAt": "2026-12-02T03:12:45.123Z",
                "lastAlertAt": "2026-12-02T03:12:55.123Z",
                "stages": stages,
            }
        out[str(index + 1)] = entry
    return out


def status(shape: str, state: str, detectors: int) -> dict[str, Any]:
    """A whole Visit status as the operator writes it (Queued or Succeeded)."""
    condition = {"status": "True", "reason": "Valid", "lastTransitionTime": "2026-12-02T03:12:45Z"}
    done = detectors if state == "Succeeded" else 0
    return {
        "phase": "Queued" if state == "Pending" else "Succeeded",
        "progress": f"{done}/{detectors}",
        "message": "queued at position 3: 248/248 detectors running",
        "jobName": "visit-100007",
        "traceId": "1" * 32,
        "alerts": 3 * done,
        "diaSources": 40 * done,
        "conditions": [{"type": t, **condition} for t in ("Validated", "Admitted", "Finished")],
        **compact.encode(entries(detectors, state), list(range(1, detectors + 1)), shape),
    }


def plane_cpu_s(bed: cluster.Cluster) -> float:
    """CPU seconds (user + system) the control plane's processes have used."""
    total = 0
    for process in bed.plane.processes:
        if process.proc is not None:
            fields = Path(f"/proc/{process.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def make_visits(bed: cluster.Cluster, args: argparse.Namespace) -> dict[str, list[str]]:
    """The Visits of each shape (``shape/state`` -> names), statuses written; print sizes."""
    api = client.CustomObjectsApi(bed.api_client())
    made: dict[str, list[str]] = {}
    for shape, state in SHAPES:
        kind = f"{shape}/{state}"
        made[kind] = [f"{shape}-{state.lower()}-{i}" for i in range(args.visits)]
        body = {"status": status(shape, state, args.detectors)}
        for name in made[kind]:
            spec = {"detectors": list(range(1, args.detectors + 1)), "deadlineSeconds": 86400}
            api.create_namespaced_custom_object(
                *GROUP, operatorbed.make_visit(name, NAMESPACE, **spec)
            )
            api.patch_namespaced_custom_object_status(*GROUP, name, body)
        held = cast(dict[str, Any], api.get_namespaced_custom_object(*GROUP, made[kind][0]))
        size, managed = len(json.dumps(held)), len(json.dumps(held["metadata"]["managedFields"]))
        print(f"  {kind:18s} object {size / 1000:5.1f} kB, managed fields {managed / 1000:5.1f} kB")
    return made


def writes(bed: cluster.Cluster, made: dict[str, list[str]], detectors: int) -> dict[str, Any]:
    """Write name -> a function doing the ``i``-th write of round ``r``."""
    api = client.CustomObjectsApi(bed.api_client())
    config = operatorbed.make_config(NAMESPACE)
    numbers = list(range(1, detectors + 1))

    def job_create(i: int, r: int) -> None:
        visit = operatorbed.make_visit(f"job-{r}-{i}", NAMESPACE, detectors=numbers)
        visit["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
        job = builders.build_job(visit, config, numbers, _TRACEPARENT, dt.datetime.now(dt.UTC))
        job["metadata"].pop("ownerReferences", None)  # no such Visit: the GC would delete it
        job["spec"]["suspend"] = True
        api.create_namespaced_custom_object("batch", "v1", NAMESPACE, "jobs", job)

    ops: dict[str, Callable[[int, int], None]] = {"Job create (the operator's)": job_create}
    for kind, visits in made.items():

        def patch(i: int, r: int, visits: list[str] = visits) -> None:
            body = {"status": {"message": f"{r}/{detectors} detectors done"}}
            api.patch_namespaced_custom_object_status(*GROUP, visits[i], body)

        def label(i: int, r: int, visits: list[str] = visits) -> None:
            body = {"metadata": {"labels": {names.LABEL_PHASE: f"Phase{r}"}}}
            api.patch_namespaced_custom_object(*GROUP, visits[i], body)

        ops[f"status patch, {kind}"] = patch
        ops[f"label patch, {kind}"] = label
    return ops


def main(argv: list[str] | None = None) -> int:
    """Measure every write, interleaved round by round; print and record the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, default=40, help="Visits (and Jobs) a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--detectors", type=int, default=62)
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    args = parser.parse_args(argv)
    if args.quick:
        args.visits, args.rounds = 10, 2
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as tmp:
        bed = cluster.start(Path(tmp) / "k8s", nodes=0)
        try:
            bed.kubectl("apply", "-f", str(ROOT / "crds"))
            bed.kubectl("wait", "--for=condition=Established", "crd/visits.shutterline.io")
            bed.kubectl("create", "namespace", NAMESPACE)
            print(f"{args.detectors} detectors a Visit; sizes as stored:")
            ops = writes(bed, make_visits(bed, args), args.detectors)
            trips: dict[str, list[float]] = {k: [] for k in ops}
            cpus: dict[str, list[float]] = {k: [] for k in ops}
            for r in range(args.rounds):
                for kind, op in ops.items():
                    before = plane_cpu_s(bed)
                    for i in range(args.visits):
                        started = time.perf_counter()
                        op(i, r)
                        trips[kind].append(time.perf_counter() - started)
                    cpus[kind].append((plane_cpu_s(bed) - before) / args.visits)
        finally:
            bed.stop()
    report(trips, cpus)
    return 0


def report(trips: dict[str, list[float]], cpus: dict[str, list[float]]) -> None:
    """Print each write's medians and ratio to the Job create; record the rows."""
    base = statistics.median(cpus["Job create (the operator's)"])
    rows = []
    print("write: round trip median, control plane CPU per write (median over rounds), ratio")
    for kind in trips:
        trip, cpu = statistics.median(trips[kind]), statistics.median(cpus[kind])
        print(f"  {kind:36s} {1000 * trip:6.1f} ms, CPU {1000 * cpu:6.1f} ms, {cpu / base:.2f}")
        rows.append((f"{kind}: CPU / Job create's", f"{cpu / base:.2f}", "1 = a Job create", ""))
    command = "bench_visit_writes.py"
    _results.record("bench_visit_writes", [(f, v, a, command) for f, v, a, _ in rows])


if __name__ == "__main__":
    sys.exit(main())
