"""The operator at scale: Visits applied at once behind a concurrency limit, pods by KWOK.

Run: ``.venv/bin/python tests/benchmarks/bench_operator_scale.py [--quick] [--visits 500]
[--complete-visits 12] [--ab-visits 100] [--ab-reps 2] [--ab-window 60] [--arms before,after]
[--cpus shared,pinned] [--detectors 62] [--limit 248] [--timeout 600] [--keep DIR]``.

A test-bed control plane without a node agent, ``--nodes`` untainted KWOK nodes (pods run
``--run-ms`` after ``--init-ms`` of init containers), the operator as a process with its own
service account (operator/rbac) and, per namespace, a PromptConfig with the built-in queue at
``--limit`` detectors.

1. Compared arms (``--arms``, of `ARMS`): the ``before`` settings (the last session's Job POST)
   and the defaults (``after``), alternating, ``--ab-reps`` of each, each in a fresh
   namespace with a fresh operator: ``--complete-visits`` at once run to the end (steady:
   latencies and API requests per finished visit, none lost or stuck), then a burst of
   ``--ab-visits`` at once followed ``--ab-window`` s. With ``--cpus shared,pinned`` each
   repetition runs every arm under both CPU layouts (`LAYOUTS`): ``shared``, every process
   on every core (this machine as it is), and ``pinned``, kube-apiserver and etcd on core 0
   alone, everything else the bench started (operator, KWOK, kube-controller-manager,
   scheduler, the bench's watches and clients) on core 1, as a site whose control plane has
   machines of its own; both reported, labelled. Other work on the machine is not pinned.
2. The burst: ``--visits`` at once under the defaults, followed ``--timeout`` s (Visit -> Job
   for every Visit; what is not finished must be waiting in the queue or running).

Two watches (Visits, Jobs, `optimeline`) time every transition on arrival, so both ends see
the same watch delay. Reported per phase: Visit -> Job created, step by step (the operator's
``SHUTTERLINE_OPERATOR_TIMES``: the Visit event reaching it, the wait for a creator, the Job
POST, the Job event reaching the bench); Visit -> Job running for those released at once;
Job done (every index has an outcome) -> Visit ``Succeeded``; the operator's own time per API
operation and its CPU (`operator_profile`); API requests per visit of every client and of the
operator alone (one FlowSchema per rule of its ClusterRole), status patches per visit; the
API server's own time per write; lost and stuck Visits. At the end: the operator's peak
resident memory (``VmHWM``) and a picture (``--picture``). Baseline in the same run: a
suspended Job created directly every 0.25 s while the operator was creating Jobs (the API
server's own latency for that write under the same load). Targets (issue 7): p99 Visit -> Job
under 0.5 s, memory under 300 MB, none lost or stuck. ``--quick``: 40-Visit compared bursts
and 4 steady (one each), a 60-Visit burst.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the sys.path set-up that makes tests/ importable)
import argparse
import collections
import contextlib
import dataclasses
import os
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

import yaml
from kubernetes import client
from tests.benchmarks import _results, operator_profile, optimeline
from tests.e2e import operatorbed
from tests.testbed import apicounts, kwok
from tests.testbed.k8s import cluster

NAMESPACE = "prompt"
PROBE_NS = "probe"
#: The operator's settings in the arms that can be compared (``--arms``): ``before`` is the
#: last session's defaults (every variable inline in every container of a Job, the whole Job
#: validated and answered), ``after`` this session's (the shared env in a ConfigMap, the
#: Visit spec once in the pod's annotations, no field validation, metadata answered);
#: ``linger-0`` is ``after`` with status work let through whenever no Visit waits for its
#: Job; ``creators-16``, ``-32`` and ``-48`` are ``after`` with that many creator threads (32
#: the default since stop 24, 16 before it); ``async`` and ``threads``
#: post Jobs from kopf's loop (aiohttp) or from a pool of threads (the Kubernetes client's
#: session), ``async-48`` with 48 POSTs in flight, not 16; ``switch-1ms`` is ``after`` with
#: the GIL handed over every 1 ms, not 5.
ARMS: dict[str, dict[str, str]] = {
    "before": {"SHUTTERLINE_JOB_POST": "inline"},
    "after": {},
    "linger-0": {"SHUTTERLINE_CREATE_LINGER_S": "0"},
    "creators-16": {"SHUTTERLINE_OPERATOR_WORKERS": "16"},
    "creators-32": {"SHUTTERLINE_OPERATOR_WORKERS": "32"},
    "creators-48": {"SHUTTERLINE_OPERATOR_WORKERS": "48"},
    "async": {"SHUTTERLINE_CREATOR": "async"},
    "async-48": {"SHUTTERLINE_CREATOR": "async", "SHUTTERLINE_OPERATOR_WORKERS": "48"},
    "threads": {"SHUTTERLINE_CREATOR": "threads"},
    "switch-1ms": {"SHUTTERLINE_SWITCH_INTERVAL_S": "0.001"},
}
PREFIX = "bench-op-"
#: CPU layouts (``--cpus``): kube-apiserver and etcd's cores, and those of the rest.
LAYOUTS: dict[str, tuple[frozenset[int], frozenset[int]] | None] = {
    "shared": None,
    "pinned": (frozenset({0}), frozenset({1})),
}
_PLANE = ("etcd", "kube-apiserver")


def pin(pid: int, cpus: set[int] | frozenset[int]) -> None:
    """Set the CPU affinity of every thread of process ``pid`` (new threads inherit it)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(tid), cpus)


def lay_out(layout: str, bed: cluster.Cluster, others: list[int]) -> None:
    """Pin the control plane and ``others`` (pids; the bench itself added) per ``layout``."""
    every = frozenset(range(os.cpu_count() or 1))
    plane_cpus, rest_cpus = LAYOUTS[layout] or (every, every)
    for process in bed.plane.processes:
        if process.proc is not None:
            pin(process.proc.pid, plane_cpus if process.name in _PLANE else rest_cpus)
    for pid in [*others, os.getpid()]:
        pin(pid, rest_cpus)
    seen = {p.name: os.sched_getaffinity(p.proc.pid) for p in bed.plane.processes if p.proc}
    print(
        f"  CPUs ({layout}): { ({k: sorted(v) for k, v in seen.items()}) }, the rest "
        f"{sorted(os.sched_getaffinity(0))}",
        flush=True,
    )


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


def operator_flow_schemas() -> list[dict[str, Any]]:
    """One FlowSchema per (resource, verb) of the operator's ClusterRole, plus a catch-all."""
    rbac = list(yaml.safe_load_all((ROOT / "operator" / "rbac" / "rbac.yaml").read_text()))
    role = next(doc for doc in rbac if doc["kind"] == "ClusterRole")
    subject = {
        "kind": "ServiceAccount",
        "serviceAccount": {"name": "shutterline-operator", "namespace": operatorbed.SYSTEM_NS},
    }
    return apicounts.flow_schemas(PREFIX, subject, role["rules"])


def install(bed: cluster.Cluster, work: Path) -> Path:
    """CRDs, RBAC, the FlowSchemas, the probe's namespace; the operator's kubeconfig."""
    bed.kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in ("visits.shutterline.io", "promptconfigs.shutterline.io"):
        bed.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    for namespace in (operatorbed.SYSTEM_NS, PROBE_NS):
        bed.kubectl("create", "namespace", namespace)
    bed.kubectl("apply", "-f", str(ROOT / "operator" / "rbac" / "rbac.yaml"))
    operatorbed.apply(bed, *operator_flow_schemas())
    # Private in the harness, but exactly what the e2e tests run the operator with.
    return operatorbed._service_account_kubeconfig(bed, work / "operator.kubeconfig")


def prepare(bed: cluster.Cluster, namespace: str, limit: int) -> None:
    """A namespace with a PromptConfig of the built-in queue at ``limit`` detectors."""
    bed.kubectl("create", "namespace", namespace)
    config = operatorbed.make_config(
        namespace,
        concurrency={"detectors": limit},
        # Finished Jobs (and their pods) go soon: a night's worth would fill etcd.
        ttlSecondsAfterFinished=15,
        debug=operatorbed.stand_in("true"),
    )
    operatorbed.apply(bed, config)


def start_operator(
    kubeconfig: Path, work: Path, namespace: str, arm: str
) -> operatorbed.OperatorProcess:
    """The operator for ``namespace`` with the settings of ``arm`` (`ARMS`)."""
    env = {
        "SHUTTERLINE_NAMESPACES": namespace,
        "SHUTTERLINE_OPERATOR_TIMES": str(work / f"times-{namespace}.jsonl"),
        **ARMS[arm],
    }
    log = work / f"operator-{namespace}.log"
    return operatorbed.OperatorProcess(kubeconfig, log, env).start()


def create_visits(
    bed: cluster.Cluster, namespace: str, first: int, count: int, detectors: int
) -> tuple[float, dict[str, float]]:
    """Create Visits ``first``..``first+count-1`` from 8 threads as fast as they are taken;
    the seconds it took and when (monotonic) each create was answered."""
    started = time.monotonic()
    local = threading.local()
    answered: dict[str, float] = {}

    def create(index: int) -> None:
        if not hasattr(local, "api"):
            local.api = client.CustomObjectsApi(bed.api_client())
        visit = operatorbed.make_visit(
            name_of(index),
            namespace,
            visitId=100000 + index,
            detectors=list(range(1, detectors + 1)),
            deadlineSeconds=86400,
        )
        local.api.create_namespaced_custom_object(
            "shutterline.io", "v1alpha1", namespace, "visits", visit
        )
        answered[name_of(index)] = time.monotonic()

    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(first, first + count)))
    return time.monotonic() - started, answered


def name_of(index: int) -> str:
    """The Visit of number ``index`` (unique in the run, across namespaces)."""
    return f"visit-{index:05d}"


def peak_rss_mb(pid: int) -> float:
    """``VmHWM`` (peak resident set) of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_all(timeline: optimeline.Timeline, names: set[str], timeout: float) -> float:
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


def latencies(
    timeline: optimeline.Timeline, names: set[str], at_once: int
) -> dict[str, list[float]]:
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
) -> dict[tuple[str, ...], float]:
    """Print the 16 largest request counts of ``key`` that grew; return all that grew."""
    delta = apicounts.delta(before, after, key)
    total = sum(delta.values())
    print(f"    total {total:.0f}, {total / visits:.1f} per visit")
    for labels, value in sorted(delta.items(), key=lambda item: -item[1])[:16]:
        print(f"      {' '.join(labels):44s} {value:8.0f}  {value / visits:7.2f}/visit")
    return delta


def verdict(timeline: optimeline.Timeline, names: set[str], complete: bool) -> int:
    """Print phases, lost and stuck Visits; 1 if any was lost (or unfinished when ``complete``).

    At a bound, an unfinished Visit is waiting if its Job is suspended (``unreported`` when
    the operator has not yet written it a status), active if released, else stuck.
    """
    t = timeline
    phases = collections.Counter(t.visit_phase.get(n, "none") for n in names)
    lost = sorted(n for n in names if n not in t.job_added)
    unfinished = {n for n in names if t.visit_phase.get(n) not in optimeline.TERMINAL} - set(lost)
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


@dataclasses.dataclass
class Phase:
    """What one phase measured: Visit -> Job, the probe beside it, the operator's writes."""

    created: list[float]
    persisted: list[float]
    probe: list[float]
    status_patches: float
    writes: float
    code: int


def _server_lines(before: apicounts.Counts, after: apicounts.Counts) -> None:
    """Print the API server's own time per critical write and the watchers it closed."""
    print("  API server's own time per request in this phase (the operator's critical writes):")
    spent = apicounts.delta(before, after, "seconds")
    timed = apicounts.delta(before, after, "timed")
    for key in (("PATCH", "visits"), ("PATCH", "visits/status"), ("POST", "jobs")):
        if key in timed:
            mean = spent.get(key, 0.0) / timed[key]
            print(f"    {' '.join(key):20s} mean {mean:.3f} s (n={timed[key]:.0f})")
    _queue_wait_lines(apicounts.delta(before, after, "waits"))
    closed = apicounts.delta(before, after, "terminated")
    print(
        "  watchers the API server closed as too slow (each held back its resource's events "
        f"from every watcher first): {({k[0]: int(v) for k, v in closed.items()}) or 'none'}"
    )


def _queue_wait_lines(waits: dict[tuple[str, ...], float]) -> None:
    """Print API Priority and Fairness's queue wait of the operator's requests, by FlowSchema:
    the time a request waited for a seat before the API server began on it."""
    print("  APF queue wait of the operator's requests (before they ran), by FlowSchema:")
    for schema in sorted({key[0] for key in waits}):
        count = waits.get((schema, "_count"), 0.0)
        if not count:
            continue
        mean = waits.get((schema, "_sum"), 0.0) / count
        bounds = sorted(
            (float(le), n) for (name, le), n in waits.items()
            if name == schema and not le.startswith("_") and le != "+Inf"
        )  # fmt: skip
        p99 = next((le for le, n in bounds if n >= 0.99 * count), float("inf"))
        print(f"    {schema:28s} mean {mean:.4f} s, p99 <= {p99:g} s (n={count:.0f})")


def run_phase(
    bed: cluster.Cluster,
    operator: operatorbed.OperatorProcess,
    timeline: optimeline.Timeline,
    args: argparse.Namespace,
    where: tuple[str, int, int],
    bound: float,
    complete: bool,
) -> Phase:
    """Apply ``count`` Visits at once in ``namespace`` (``where``) and follow them for at most
    ``bound`` s; print the phase's figures."""
    namespace, first, count = where
    names = {name_of(i) for i in range(first, first + count)}
    before = apicounts.scrape(bed, PREFIX)
    assert operator.process.proc is not None
    pid = operator.process.proc.pid
    profile = operator_profile.take(operator.metrics(), pid)
    probe = operator_profile.Probe(bed.api_client(), PROBE_NS)
    probe.start()
    sampler = operator_profile.sampler(args.py_spy, pid, f"{namespace}-{first}", args.py_spy_gil)
    seconds, posted = create_visits(bed, namespace, first, count, args.detectors)
    print(f"  {count} Visits created in {seconds:.1f} s ({count / seconds:.0f}/s)", flush=True)
    took = wait_all(timeline, names, bound)
    if sampler is not None:
        for line in sampler.stop():
            print(f"  {line}")
    with timeline.lock:
        seen, made = dict(timeline.visit_added), dict(timeline.job_added)
    span = [seen[n] for n in names if n in seen] + [made[n] for n in names if n in made]
    probed = probe.stop(min(span, default=0.0), max(span, default=0.0))
    after = apicounts.scrape(bed, PREFIX)
    print("  the operator's own time (client side; thread-seconds overlap):")
    for line in operator_profile.lines(profile, operator_profile.take(operator.metrics(), pid)):
        print(f"    {line}")
    print("  each Visit -> Job, step by step:")
    times = operator.env["SHUTTERLINE_OPERATOR_TIMES"]
    steps = operator_profile.steps(Path(times), seen, made, posted)
    for title, values in steps.items():
        print(f"    {title}: {summary(values)}")
    finished = len(names & timeline.visit_done.keys())
    print(f"  {finished} Visits finished in {took:.0f} s ({60 * finished / took:.1f} per minute)")
    for title, values in latencies(timeline, names, args.limit // args.detectors).items():
        print(f"  {title}: {summary(values)}")
    print(f"  baseline, a Job created directly while Jobs were made: {summary(probed)}")
    per = max(finished, 1) if complete else count
    print(f"  API requests, every client (verb, resource), per {'finished' * complete} visit:")
    _request_table(before, after, "all", per)
    print("  API requests of the operator (its ClusterRole's resource-verb):")
    ours = _request_table(before, after, "client", per)
    print("  API requests by FlowSchema (who: exempt = the bench and KWOK, as admin; ")
    print("  kube-system-service-accounts = kube-controller-manager's controllers):")
    _request_table(before, after, "schema", per)
    _server_lines(before, after)
    writes = sum(v for k, v in ours.items() if not k[0].endswith(("watch", "list", "get")))
    return Phase(
        latencies(timeline, names, 1)["Visit -> Job created"],
        steps.get(operator_profile.PERSISTED, []),
        probed,
        ours.get(("visits-status-patch",), 0.0) / per,
        writes / per,
        verdict(timeline, names, complete),
    )


def compare(
    bed: cluster.Cluster,
    timeline: optimeline.Timeline,
    args: argparse.Namespace,
    kubeconfig: Path,
    work: Path,
    peaks: list[float],
    helpers: list[int],
) -> dict[str, list[Phase]]:
    """Under each arm's operator and CPU layout (``--cpus``), alternating, each in a
    namespace of its own (deleted after): ``--complete-visits`` run to the end, then a burst
    of ``--ab-visits`` followed for ``--ab-window`` s. Keys ``steady, ARM[, LAYOUT]`` and
    ``burst, ARM[, LAYOUT]`` (the layout named when there are several); each operator's peak
    resident memory (MB) is appended to ``peaks``; ``helpers``: pids of KWOK and the
    watches."""
    layouts = args.cpus.split(",")
    arms = [(a, c) for c in layouts for a in args.arms.split(",")]
    label = {(a, c): a if len(layouts) == 1 else f"{a}, {c}" for a, c in arms}
    results: dict[str, list[Phase]] = {
        f"{p}, {label[k]}": [] for p in ("burst", "steady") for k in arms
    }
    first = 10000
    for rep in range(args.ab_reps):
        for key in arms[:: 1 if rep % 2 == 0 else -1]:
            arm, layout = key
            name = label[key]
            namespace = f"ab-{rep}-{arm}-{layout}"
            print(f"{name} {rep + 1}/{args.ab_reps}: {args.complete_visits} steady", flush=True)
            prepare(bed, namespace, args.limit)
            operator = start_operator(kubeconfig, work, namespace, arm)
            try:
                assert operator.process.proc is not None
                lay_out(layout, bed, [*helpers, operator.process.proc.pid])
                where = (namespace, first, args.complete_visits)
                phase = run_phase(bed, operator, timeline, args, where, args.timeout, True)
                results[f"steady, {name}"].append(phase)
                first += args.complete_visits
                print(f"{name} {rep + 1}/{args.ab_reps}: {args.ab_visits} at once", flush=True)
                where = (namespace, first, args.ab_visits)
                phase = run_phase(bed, operator, timeline, args, where, args.ab_window, False)
                results[f"burst, {name}"].append(phase)
                assert operator.process.proc is not None
                peaks.append(peak_rss_mb(operator.process.proc.pid))
                print(f"  operator peak memory {peaks[-1]:.0f} MB")
            finally:
                operator.stop()
                lay_out("shared", bed, helpers)
            bed.kubectl("delete", "namespace", namespace, "--wait=false")
            wait = ("wait", "--for=delete", f"namespace/{namespace}", "--timeout=180s")
            bed.kubectl(*wait, check=False, timeout=200)
            first += args.ab_visits
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and both phases; non-zero if a Visit was lost or stuck."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, default=500, help="the burst (0: none)")
    parser.add_argument("--complete-visits", type=int, default=12, help="run to the end")
    parser.add_argument("--ab-visits", type=int, default=100, help="each compared burst")
    parser.add_argument("--ab-reps", type=int, default=2, help="compared bursts of each arm")
    parser.add_argument("--ab-window", type=float, default=60, help="each is followed, s")
    parser.add_argument("--arms", default="before,after", help=f"compared, of {sorted(ARMS)}")
    parser.add_argument("--cpus", default="shared", help=f"CPU layouts, of {sorted(LAYOUTS)}")
    parser.add_argument("--detectors", type=int, default=62)
    parser.add_argument("--limit", type=int, default=248, help="detectors running at once")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--init-ms", type=int, default=200)
    parser.add_argument("--run-ms", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600, help="bound of each phase, s")
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--keep", type=Path, help="keep the test bed's state and logs here")
    parser.add_argument("--picture", type=Path, default=ROOT / ".bench" / "operator_scale.png")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="sample the operator with py-spy during each phase (flame graph and stacks in DIR)",
    )
    parser.add_argument(
        "--py-spy-gil",
        action="store_true",
        help="with --py-spy: sample only the thread holding the GIL (work, not waits for it)",
    )
    parser.add_argument(
        "--base",
        type=Path,
        metavar="TREE",
        help="add the arm 'base': the operator of another tree (e.g. `git archive REV`)",
    )
    args = parser.parse_args(argv)
    if args.base:
        if not (args.base / "operator" / "shutterline_operator").is_dir():
            parser.error(f"--base: no operator/shutterline_operator in {args.base}")
        ARMS["base"] = {"PYTHONPATH": str(args.base.resolve() / "operator")}
    if unknown := set(args.arms.split(",")) - ARMS.keys():
        parser.error(f"--arms: no arm {sorted(unknown)}; the arms are {sorted(ARMS)}")
    if unknown := set(args.cpus.split(",")) - LAYOUTS.keys():
        parser.error(f"--cpus: no layout {sorted(unknown)}; the layouts are {sorted(LAYOUTS)}")
    if "pinned" in args.cpus.split(",") and not {0, 1} <= os.sched_getaffinity(0):
        parser.error("--cpus pinned needs cores 0 and 1")
    if args.quick:
        args.visits, args.complete_visits, args.timeout = 60, 4, 90
        args.ab_visits, args.ab_reps, args.ab_window = 40, 1, 40
    # A time-out's SIGTERM must still stop the test bed (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(
        f"{args.detectors} detectors a visit, limit {args.limit} detectors, {args.nodes} KWOK "
        f"nodes, pods {args.init_ms} + {args.run_ms} ms",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        return run(work, args)


def _median_of(phases: list[Phase], figure: str, q: float) -> float:
    """The median over ``phases`` of each one's ``q`` quantile of list ``figure``."""
    lists = [getattr(p, figure) for p in phases if getattr(p, figure)]
    return statistics.median(percentile(v, q) for v in lists) if lists else float("nan")


def _median_of_ratios(phases: list[Phase]) -> float:
    """The median over ``phases`` of stored p99 / direct p99 (each burst against its own
    probe: the load moves between bursts)."""
    ratios = [
        percentile(p.persisted, 0.99) / percentile(p.probe, 0.99)
        for p in phases
        if p.persisted and p.probe
    ]
    return statistics.median(ratios) if ratios else float("nan")


def report(compared: dict[str, list[Phase]], burst: Phase | None, rss: float) -> None:
    """The figures side by side, and the rows of `make bench`'s table. Visit -> Job is given
    twice: between the two creates' answers (``stored``: the operator's part and the API
    server's) and between the bench's watch events (``watched``: plus both watches' delays)."""
    rows = []
    command = "bench_operator_scale.py"
    print("Visit -> Job p50 / p99, s (compared bursts: median over the repetitions):")
    phases = compared | ({f"{len(burst.created)}-visit burst": [burst]} if burst else {})
    for title, group in phases.items():
        rounds = ", ".join(
            f"{percentile(p.persisted, 0.99):.3f} / {percentile(p.created, 0.99):.3f} / "
            f"{percentile(p.probe, 0.99):.3f}"
            for p in group
        )
        print(f"  {title}: each round's p99 stored / watched / direct: {rounds}")
        stored = [_median_of(group, "persisted", q) for q in (0.5, 0.99)]
        watched = [_median_of(group, "created", q) for q in (0.5, 0.99)]
        direct = _median_of(group, "probe", 0.99)
        patches = statistics.median(p.status_patches for p in group)
        writes = statistics.median(p.writes for p in group)
        ratio = _median_of_ratios(group)
        print(
            f"  {title:18s} stored {stored[0]:.3f} / {stored[1]:.3f}, watched {watched[0]:.3f}"
            f" / {watched[1]:.3f} (direct Job create p99 {direct:.3f}; stored p99 / direct p99 "
            f"{ratio:.2f}); a visit: status patches {patches:.2f}, operator writes {writes:.2f}"
        )
        target = "target < 0.5 s"
        rows += [
            (f"{title}: Visit -> Job p99, stored", f"{stored[1]:.3f} s", target, command),
            (f"{title}: Visit -> Job p99, watched", f"{watched[1]:.3f} s", target, command),
            (f"{title}: stored p99 / direct p99", f"{ratio:.2f}", "1 = the API server's", command),
            (f"{title}: direct Job create p99", f"{direct:.3f} s", "baseline", command),
            (f"{title}: status patches a visit", f"{patches:.2f}", "", command),
        ]
    print(f"operator peak resident memory: {rss:.0f} MB (target < 300 MB)")
    rows.append(("operator peak memory", f"{rss:.0f} MB", "target < 300 MB", command))
    _results.record("bench_operator_scale", rows)


def run(work: Path, args: argparse.Namespace) -> int:
    """Start the bed and the watches; compare the arms; run both phases with ``after``."""
    bed = cluster.start(work / "k8s", nodes=0)
    parts: list[Any] = []
    try:
        capacity = {"cpu": "4000", "memory": "16Ti", "pods": "1000"}
        pods = (args.init_ms, args.run_ms)
        fake = kwok.start(bed, work / "kwok", args.nodes, capacity, False, *pods)
        parts.append(fake)
        assert fake.process.proc is not None
        kubeconfig = install(bed, work)
        timeline = optimeline.Timeline()
        watches = optimeline.start(bed, timeline)
        parts.append(watches)
        helpers = [fake.process.proc.pid, *(w.pid for w in watches.processes)]
        time.sleep(2)
        peaks: list[float] = []
        compared = compare(bed, timeline, args, kubeconfig, work, peaks, helpers)
        burst = None
        if args.visits:
            prepare(bed, NAMESPACE, args.limit)
            operator = start_operator(kubeconfig, work, NAMESPACE, "after")
            parts.append(operator)
            print(f"the burst: {args.visits} Visits at once, bounded by {args.timeout:.0f} s")
            where = (NAMESPACE, 0, args.visits)
            burst = run_phase(bed, operator, timeline, args, where, args.timeout, False)
            assert operator.process.proc is not None
            peaks.append(peak_rss_mb(operator.process.proc.pid))
        report(compared, burst, max(peaks, default=float("nan")))
        optimeline.picture(timeline, args.picture)
        codes = [p.code for ps in compared.values() for p in ps] + [burst.code if burst else 0]
        return max(codes)
    finally:
        for part in reversed(parts):
            with contextlib.suppress(Exception):
                part.stop()
        bed.stop()


if __name__ == "__main__":
    sys.exit(main())
