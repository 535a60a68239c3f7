"""The operator at scale: Visits applied at once behind a concurrency limit, pods by KWOK.

Run: ``.venv/bin/python tests/benchmarks/bench_operator_scale.py [--visits 500]
[--complete-visits 12] [--detectors 62] [--limit 248] [--timeout 600] [--keep DIR]``.

A test-bed control plane without a node agent, ``--nodes`` untainted KWOK nodes (pods run
``--run-ms`` after ``--init-ms`` of init containers), the operator as a process with its own
service account (operator/rbac) and a PromptConfig with the built-in queue at ``--limit``
detectors. Phase 1 applies ``--complete-visits`` Visits at once and runs them to the end
(latencies and API requests per finished visit, none lost or stuck); phase 2 applies
``--visits`` at once and follows them for ``--timeout`` s (the burst: Visit -> Job for every
Visit; what is not finished must be waiting in the queue or running). Two watches (Visits,
Jobs) time every transition on arrival, so both ends see the same watch delay.

Reported: Visit -> Job created; Visit -> Job running for those released at once (under the
limit); Job done (every index has an outcome) -> Visit ``Succeeded``; the operator's peak
resident memory (``VmHWM``); API requests per visit, of every client
(``apiserver_request_total`` by verb and resource) and of the operator alone (one FlowSchema
per rule of its ClusterRole, counted by ``apiserver_flowcontrol_dispatched_requests_total``);
the API server's own time per write; lost and stuck Visits; a picture of the run
(``--picture``). Baseline in the same run: the round trip of creating a suspended Job
directly. Targets (issue 7): p99 Visit -> Job under 0.5 s, memory under 300 MB, none lost or
stuck.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the sys.path set-up that makes tests/ importable)
import argparse
import collections
import contextlib
import json
import signal
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

import urllib3
import yaml
from kubernetes import client, watch
from tests.e2e import operatorbed
from tests.testbed import apicounts, kwok
from tests.testbed.k8s import cluster

NAMESPACE = "prompt"
TERMINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Rejected", "TimedOut"}
PREFIX = "bench-op-"


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> str:
    """``median / p99 / max (n)`` in seconds."""
    if not values:
        return "n/a (0 samples)"
    return (
        f"median {statistics.median(values):.3f} s, p99 {percentile(values, 0.99):.3f} s, "
        f"max {max(values):.3f} s (n={len(values)})"
    )


class Timeline:
    """When (monotonic) each watched transition was first seen, per Visit name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.visit_added: dict[str, float] = {}
        self.visit_phase: dict[str, str] = {}
        self.visit_done: dict[str, float] = {}
        self.job_added: dict[str, float] = {}
        self.job_released: dict[str, float] = {}
        self.job_complete: dict[str, float] = {}

    def visit(self, kind: str, obj: dict[str, Any], now: float) -> None:
        """Record a Visit event."""
        name = obj["metadata"]["name"]
        phase = (obj.get("status") or {}).get("phase")
        with self.lock:
            self.visit_added.setdefault(name, now)
            if phase:
                self.visit_phase[name] = phase
            if phase in TERMINAL:
                self.visit_done.setdefault(name, now)

    def job(self, kind: str, obj: dict[str, Any], now: float) -> None:
        """Record a Job event (keyed by its Visit owner)."""
        owners = [r["name"] for r in obj["metadata"].get("ownerReferences") or []]
        if not owners or kind == "DELETED":
            return
        name = owners[0]
        with self.lock:
            self.job_added.setdefault(name, now)
            if not obj["spec"].get("suspend"):
                self.job_released.setdefault(name, now)
            # Done when every index has an outcome: the Complete condition follows only once
            # the pods are gone, and the operator need not wait for it.
            status = obj.get("status") or {}
            outcomes = int(status.get("succeeded") or 0) + int(status.get("failed") or 0)
            if outcomes >= int(obj["spec"].get("completions") or 1):
                self.job_complete.setdefault(name, now)


def _watch_forever(api: client.ApiClient, group: str, plural: str, record: Any) -> None:
    """Stream events of ``group``/``plural`` in NAMESPACE into ``record`` (resumes on ends)."""
    objects = client.CustomObjectsApi(api)
    group_name, _, version = group.rpartition("/")
    version_kw: dict[str, Any] = {}
    while True:
        stream = watch.Watch()
        try:
            for event in stream.stream(
                objects.list_namespaced_custom_object,
                group_name,
                version,
                NAMESPACE,
                plural,
                deserialize=False,
                allow_watch_bookmarks=True,
                **version_kw,
            ):
                data = json.loads(event) if isinstance(event, str) else event
                if data["type"] == "BOOKMARK":
                    continue
                record(data["type"], data["object"], time.monotonic())
                version_kw = {"resource_version": data["object"]["metadata"]["resourceVersion"]}
        except client.ApiException as error:
            if error.status != 410:
                raise
            version_kw = {}
        except KeyError:
            # The client trips over an ERROR event (410, version too old) when not
            # deserializing: start afresh (first-seen times are kept, so nothing goes back).
            print(f"  ({plural} watch restarted)", flush=True)
            version_kw = {}
        except urllib3.exceptions.HTTPError:
            # The API server closed the stream (it restarts watches, or the bed is stopping).
            time.sleep(0.5)


def start_watches(bed: cluster.Cluster, timeline: Timeline) -> None:
    """Daemon threads watching Visits and Jobs in NAMESPACE."""
    for group, plural, record in (
        ("shutterline.io/v1alpha1", "visits", timeline.visit),
        ("batch/v1", "jobs", timeline.job),
    ):
        api = bed.api_client()
        thread = threading.Thread(
            target=_watch_forever, args=(api, group, plural, record), daemon=True
        )
        thread.start()


def operator_flow_schemas() -> list[dict[str, Any]]:
    """One FlowSchema per (resource, verb) of the operator's ClusterRole, plus a catch-all."""
    rbac = list(yaml.safe_load_all((ROOT / "operator" / "rbac" / "rbac.yaml").read_text()))
    role = next(doc for doc in rbac if doc["kind"] == "ClusterRole")
    subject = {
        "kind": "ServiceAccount",
        "serviceAccount": {"name": "shutterline-operator", "namespace": operatorbed.SYSTEM_NS},
    }
    return apicounts.flow_schemas(PREFIX, subject, role["rules"])


def install(bed: cluster.Cluster, work: Path, limit: int) -> operatorbed.OperatorProcess:
    """CRDs, RBAC, the FlowSchemas, a PromptConfig; then start the operator and return it."""
    bed.kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in ("visits.shutterline.io", "promptconfigs.shutterline.io"):
        bed.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    for namespace in (operatorbed.SYSTEM_NS, NAMESPACE):
        bed.kubectl("create", "namespace", namespace)
    bed.kubectl("apply", "-f", str(ROOT / "operator" / "rbac" / "rbac.yaml"))
    operatorbed.apply(bed, *operator_flow_schemas())
    config = operatorbed.make_config(
        NAMESPACE,
        concurrency={"detectors": limit},
        # Finished Jobs (and their pods) go soon: a night's worth would fill etcd.
        ttlSecondsAfterFinished=15,
        debug=operatorbed.stand_in("true"),
    )
    operatorbed.apply(bed, config)
    # Private in the harness, but exactly what the e2e tests run the operator with.
    kubeconfig = operatorbed._service_account_kubeconfig(bed, work / "operator.kubeconfig")
    env = {"SHUTTERLINE_NAMESPACES": NAMESPACE}
    return operatorbed.OperatorProcess(kubeconfig, work / "operator.log", env).start()


def baseline_job_creates(bed: cluster.Cluster, count: int = 30) -> list[float]:
    """Round trips of creating a suspended Job directly (same API server, same run)."""
    bed.kubectl("create", "namespace", "baseline")
    batch = client.CustomObjectsApi(api := bed.api_client())
    seconds = []
    try:
        for index in range(count):
            job = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": f"baseline-{index}"},
                "spec": {
                    "suspend": True,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox"}],
                        }
                    },
                },
            }
            started = time.monotonic()
            batch.create_namespaced_custom_object("batch", "v1", "baseline", "jobs", job)
            seconds.append(time.monotonic() - started)
    finally:
        api.close()
        bed.kubectl("delete", "namespace", "baseline", "--wait=false")
    return seconds


def create_visits(bed: cluster.Cluster, first: int, count: int, detectors: int) -> float:
    """Create Visits ``first``..``first+count-1`` from 8 threads as fast as they are taken."""
    started = time.monotonic()
    local = threading.local()

    def create(index: int) -> None:
        if not hasattr(local, "api"):
            local.api = client.CustomObjectsApi(bed.api_client())
        visit = operatorbed.make_visit(
            f"visit-{index:04d}",
            NAMESPACE,
            visitId=100000 + index,
            detectors=list(range(1, detectors + 1)),
            deadlineSeconds=86400,
        )
        local.api.create_namespaced_custom_object(
            "shutterline.io", "v1alpha1", NAMESPACE, "visits", visit
        )

    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(first, first + count)))
    return time.monotonic() - started


def peak_rss_mb(pid: int) -> float:
    """``VmHWM`` (peak resident set) of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_all(timeline: Timeline, names: set[str], timeout: float) -> float:
    """Print progress every 10 s until the Visits ``names`` are terminal or ``timeout``.

    Returns the seconds it took (``timeout`` if not all finished).
    """
    started = time.monotonic()
    last = 0.0
    while time.monotonic() - started < timeout:
        with timeline.lock:
            done = len(names & timeline.visit_done.keys())
            jobs = len(names & timeline.job_added.keys())
            running = len(names & (timeline.job_released.keys() - timeline.job_complete.keys()))
        if time.monotonic() - last >= 10:
            last = time.monotonic()
            print(
                f"  {last - started:6.0f} s: {jobs}/{len(names)} Jobs, {running} released "
                f"and not complete, {done}/{len(names)} Visits finished",
                flush=True,
            )
        if done >= len(names):
            return time.monotonic() - started
        time.sleep(0.5)
    print(f"  bound of {timeout:.0f} s reached", flush=True)
    return timeout


def latencies(timeline: Timeline, names: set[str], at_once: int) -> dict[str, list[float]]:
    """The reported intervals of the Visits ``names`` from the watched transitions.

    ``at_once``: how many Visits the limit lets run together (those released first were
    under the limit when they arrived).
    """
    t = timeline
    created = [t.job_added[n] - t.visit_added[n] for n in names if n in t.job_added]
    released = sorted((t.job_released[n], n) for n in names if n in t.job_released)
    first = [n for _, n in released[:at_once]]
    finish = [
        t.visit_done[n] - t.job_complete[n]
        for n in names
        if n in t.job_complete and n in t.visit_done
    ]
    return {
        "Visit -> Job created": created,
        "Visit -> Job running, released at once (under the limit)": [
            t.job_released[n] - t.visit_added[n] for n in first
        ],
        "Job done (every index) -> Visit Succeeded": finish,
    }


def _request_table(
    before: apicounts.Counts, after: apicounts.Counts, key: str, visits: int
) -> None:
    delta = apicounts.delta(before, after, key)
    total = sum(delta.values())
    print(f"    total {total:.0f}, {total / visits:.1f} per visit")
    for labels, value in sorted(delta.items(), key=lambda item: -item[1])[:20]:
        print(f"      {' '.join(labels):44s} {value:8.0f}  {value / visits:7.2f}/visit")


def verdict(timeline: Timeline, names: set[str], complete: bool) -> int:
    """Print phases, lost and stuck Visits; 1 if any was lost (or unfinished when ``complete``).

    At a bound, an unfinished Visit is waiting if its Job is suspended (``unreported`` when
    the operator has not yet written it a status), active if released, else stuck.
    """
    t = timeline
    phases = collections.Counter(t.visit_phase.get(n, "none") for n in names)
    lost = sorted(n for n in names if n not in t.job_added)
    unfinished = {n for n in names if t.visit_phase.get(n) not in TERMINAL} - set(lost)
    active = {n for n in unfinished if n in t.job_released}
    waiting = unfinished - active
    unreported = {n for n in waiting if n not in t.visit_phase}
    stuck = sorted(unfinished if complete else unfinished - active - waiting)
    print(f"  Visits seen {len(names & t.visit_added.keys())}/{len(names)}; phases {dict(phases)}")
    print(
        f"  lost (no Job): {len(lost)} {lost[:5]}; stuck: {len(stuck)} {stuck[:5]}; at the end "
        f"{len(active)} running, {len(waiting)} waiting in the queue ({len(unreported)} of "
        "them without a status from the operator yet)"
    )
    return 1 if lost or stuck else 0


def run_phase(
    bed: cluster.Cluster,
    timeline: Timeline,
    args: argparse.Namespace,
    first: int,
    count: int,
    complete: bool,
) -> tuple[int, dict[str, Any]]:
    """Apply ``count`` Visits at once and follow them; print the phase's figures."""
    names = {f"visit-{i:04d}" for i in range(first, first + count)}
    before = apicounts.scrape(bed, PREFIX)
    seconds = create_visits(bed, first, count, args.detectors)
    print(f"  {count} Visits created in {seconds:.1f} s ({count / seconds:.0f}/s)", flush=True)
    took = wait_all(timeline, names, args.timeout)
    after = apicounts.scrape(bed, PREFIX)
    finished = len(names & timeline.visit_done.keys())
    print(f"  {finished} Visits finished in {took:.0f} s ({60 * finished / took:.1f} per minute)")
    for title, values in latencies(timeline, names, args.limit // args.detectors).items():
        print(f"  {title}: {summary(values)}")
    per = max(finished, 1) if complete else count
    print(f"  API requests, every client (verb, resource), per {'finished' * complete} visit:")
    _request_table(before, after, "all", per)
    print("  API requests of the operator (its ClusterRole's resource-verb):")
    _request_table(before, after, "client", per)
    print("  API server's own time per request in this phase (the operator's critical writes):")
    spent = apicounts.delta(before, after, "seconds")
    timed = apicounts.delta(before, after, "timed")
    for key in (("POST", "visits"), ("PATCH", "visits"), ("POST", "jobs"), ("PATCH", "jobs")):
        if key in timed:
            mean = spent.get(key, 0.0) / timed[key]
            print(f"    {' '.join(key):16s} mean {mean:.3f} s (n={timed[key]:.0f})")
    return verdict(timeline, names, complete), {"created": latencies(timeline, names, 1)}


def picture(timeline: Timeline, path: Path) -> None:
    """Cumulative Visits created, Jobs created and released, Jobs and Visits done, over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = timeline
    series = {
        "Visit created": t.visit_added,
        "Job created": t.job_added,
        "Job released": t.job_released,
        "Job done": t.job_complete,
        "Visit finished": t.visit_done,
    }
    start = min(t.visit_added.values(), default=0.0)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, times in series.items():
        xs = sorted(v - start for v in times.values())
        ax.step(xs, range(1, len(xs) + 1), where="post", label=label)
    ax.set_xlabel("seconds since the first Visit")
    ax.set_ylabel("Visits")
    ax.set_title("Operator at scale: Visits through the built-in queue (pods by KWOK)")
    ax.legend(loc="upper left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"picture: {path}")


def main(argv: list[str] | None = None) -> int:
    """Run both phases; return non-zero if a Visit was lost or stuck."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, default=500, help="the burst")
    parser.add_argument("--complete-visits", type=int, default=12, help="run to the end")
    parser.add_argument("--detectors", type=int, default=62)
    parser.add_argument("--limit", type=int, default=248, help="detectors running at once")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--init-ms", type=int, default=200)
    parser.add_argument("--run-ms", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600, help="bound of each phase, s")
    parser.add_argument("--keep", type=Path, help="keep the test bed's state and logs here")
    parser.add_argument("--picture", type=Path, default=ROOT / ".bench" / "operator_scale.png")
    args = parser.parse_args(argv)
    # A time-out's SIGTERM must still stop the test bed (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(
        f"{args.detectors} detectors a visit, limit {args.limit} detectors, {args.nodes} KWOK "
        f"nodes, pods {args.init_ms} + {args.run_ms} ms",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        work = args.keep or Path(tmp)
        return run(work, args)


def run(work: Path, args: argparse.Namespace) -> int:
    """Start the bed, the operator and the watches; run both phases; report."""
    bed = cluster.start(work / "k8s", nodes=0)
    parts: list[Any] = []
    try:
        capacity = {"cpu": "4000", "memory": "16Ti", "pods": "1000"}
        parts.append(
            kwok.start(bed, work / "kwok", args.nodes, capacity, False, args.init_ms, args.run_ms)
        )
        operator = install(bed, work, args.limit)
        parts.append(operator)
        baseline = baseline_job_creates(bed)
        timeline = Timeline()
        start_watches(bed, timeline)
        time.sleep(1)
        print(f"phase 1: {args.complete_visits} Visits at once, run to the end", flush=True)
        code, _ = run_phase(bed, timeline, args, 0, args.complete_visits, True)
        print(f"phase 2: {args.visits} Visits at once, bounded by {args.timeout:.0f} s", flush=True)
        burst_code, burst = run_phase(bed, timeline, args, args.complete_visits, args.visits, False)
        assert operator.process.proc is not None
        rss = peak_rss_mb(operator.process.proc.pid)
        created = burst["created"]["Visit -> Job created"]
        print(f"baseline, direct Job create round trip: {summary(baseline)}")
        if created:
            ratio = percentile(created, 0.99) / statistics.median(baseline)
            print(
                f"burst p99 Visit -> Job / median direct create: {ratio:.0f}x (target p99 < 0.5 s)"
            )
        print(f"operator peak resident memory: {rss:.0f} MB (target < 300 MB)")
        picture(timeline, args.picture)
        return code or burst_code
    finally:
        for part in reversed(parts):
            with contextlib.suppress(Exception):
                part.stop()
        bed.stop()


if __name__ == "__main__":
    sys.exit(main())
