"""Telemetry from outside the pipeline: its cost, and what it sees against in-process spans.

One 2048 x 4096 detector (the cached night of ``bench_pipeline.py``), stages ISR to spooled
alerts, in a child process as the pod's pipeline container would run it:

1. Overhead on the pipeline of the real ``shutterline telemetry`` sidecar at 2 Hz: each
   round runs the pipeline unwatched, watched and unwatched again, in an order that rotates
   from round to round, each started the same ``SETTLE_S`` after its inputs are loaded;
   the ratio of its CPU and wall seconds watched over the mean of the round's two
   unwatched runs (target < 1.02), beside the ratio of the two unwatched runs (the noise
   floor the overhead must clear), medians and ranges over the rounds; and the sidecar's
   own CPU seconds per pipeline CPU second.
2. The sampler's CPU per sample (a process alone, and a tree found by a ``/proc`` scan).
3. In-process stage spans against outside samples of the same runs: CPU seconds and peak
   resident memory per stage, outside figures attributed by time window, at 2, 4 and 20 Hz
   (one 20 Hz stream, decimated); the in-process peak per stage is the kernel's own mark,
   reset at each stage start (``StageRecorder(peak_memory=True)``).
4. The in-process recorder's own cost per stage.

Writes ``.bench/telemetry_timeline.png`` (``--picture`` for another path): the outside
samples over the stage timeline.

    .venv/bin/python tests/benchmarks/bench_telemetry.py [--repeat 6] [--quick] [--picture PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import _results  # noqa: E402
import bench_pipeline  # noqa: E402  (the cached night)

from shutterline.telemetry import proc, summary  # noqa: E402


def child(args: argparse.Namespace) -> None:
    """The pipeline process: load, say ready, run the stages on "go", report timings."""
    from shutterline.association import apdb
    from shutterline.butler import inputs as butler_inputs
    from shutterline.butler import repo
    from shutterline.pipeline import detector
    from shutterline.pipeline import settings as settings_mod
    from shutterline.telemetry import stages

    root, entry = bench_pipeline.prepared_night()
    butler = repo.open_repo(str(root))
    inputs = butler_inputs.load_detector_inputs(butler, entry["visit"], entry["detectors"][0])
    out = Path(args.child)
    apdb.open_apdb(str(out.with_suffix(".sqlite3")), create=True)
    settings = settings_mod.Settings(
        repo=str(root),
        apdb=str(out.with_suffix(".sqlite3")),
        spool=out.parent / "spool",
        workdir=out.parent / "work",
    )
    print("ready", flush=True)
    sys.stdin.readline()
    rec = stages.StageRecorder(peak_memory=args.peak_memory)
    cpu0, wall0, unix0 = time.process_time(), time.perf_counter(), time.time()
    detector.process_detector(inputs, settings, rec)
    report = {
        "cpu_s": time.process_time() - cpu0,
        "wall_s": time.perf_counter() - wall0,
        "unix_start": unix0,
        "stages": [t.__dict__ for t in rec.timings],
    }
    out.write_text(json.dumps(report))


class Pipeline:
    """One child pipeline run; ``go()`` starts the stages, ``wait()`` returns its report."""

    def __init__(self, work: Path, peak_memory: bool = False) -> None:
        self.out = work / f"run-{time.monotonic_ns()}.json"
        argv = [sys.executable, __file__, "--child", str(self.out)]
        argv += ["--peak-memory"] if peak_memory else []
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout and self.p.stdout.readline().strip() == "ready"

    def go(self) -> None:
        assert self.p.stdin
        self.p.stdin.write("go\n")
        self.p.stdin.close()

    def wait(self) -> dict[str, Any]:
        assert self.p.wait(600) == 0
        if self.p.stdout:
            self.p.stdout.close()
        return dict(json.loads(self.out.read_text()))


def _sidecar(work: Path, pid: int, hz: float) -> subprocess.Popen[bytes]:
    """The real sidecar, as in a fresh pod (its own scratch), watching ``pid``."""
    pod = work / "pod"
    (pod / "pids").mkdir(parents=True, exist_ok=True)
    (pod / "pids" / "pipeline").write_text(str(pid))
    env = {
        **os.environ,
        "SHUTTERLINE_REPO": "unused",
        "SHUTTERLINE_APDB": "unused",
        "SHUTTERLINE_SPOOL": str(work / f"scratch-{pid}" / "spool"),
        "SHUTTERLINE_SPANS_PATH": str(work / "spans.jsonl"),
        "SHUTTERLINE_TELEMETRY_HZ": str(hz),
        "TESTBED_POD_DIR": str(pod),
        "POD_NAME": "bench",
        "TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    argv = [sys.executable, "-m", "shutterline.cli.main", "telemetry"]
    return subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)


def _running(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (summary.read_summary(path) or {}).get("state") != "running":
        if time.monotonic() > deadline:
            raise RuntimeError("the telemetry sidecar never started sampling")
        time.sleep(0.05)


#: Seconds every run waits between its pipeline's "ready" and "go", watched or not: the
#: watched run's wait for the sidecar to import and start sampling would otherwise be the
#: one thing besides the sidecar that differs between the arms.
SETTLE_S = 6.0


def _one_run(work: Path, hz: float | None) -> dict[str, Any]:
    """One pipeline run, watched by the sidecar at ``hz`` (None: unwatched)."""
    pipe = Pipeline(work)
    ready = time.monotonic()
    car = _sidecar(work, pipe.p.pid, hz) if hz else None
    if car:  # started, imported and watching: count its steady state only
        _running(summary.summary_path(work / f"scratch-{pipe.p.pid}" / "spool"))
        car_cpu0 = proc.read_process(car.pid).cpu_s
    waited = time.monotonic() - ready
    if waited > SETTLE_S:
        print(f"   (the sidecar took {waited:.1f} s to start, over the {SETTLE_S:.0f} s settle)")
    time.sleep(max(0.0, SETTLE_S - waited))
    pipe.go()
    report = pipe.wait()
    if car:
        _, status, usage = os.wait4(car.pid, 0)
        car.returncode = os.waitstatus_to_exitcode(status)
        report["sidecar_cpu_s"] = usage.ru_utime + usage.ru_stime - car_cpu0
    return report


def overhead(work: Path, repeat: int, hz: float) -> dict[str, Any]:
    """Per round: the pipeline unwatched, watched at ``hz``, and unwatched again.

    The arms' order rotates from round to round. Ratios are taken within a round, where the
    machine's load is most alike: watched over the mean of the two unwatched runs (the
    overhead), and the second unwatched over the first (the noise floor: a ratio the
    overhead must clear to mean anything).
    """
    arms: dict[str, float | None] = {"off": None, "on": hz, "off again": None}
    names = list(arms)
    ratios: dict[str, list[float]] = {k: [] for k in ("cpu", "wall", "aa_cpu", "aa_wall")}
    sidecar, core = [], []
    for i in range(repeat):
        order = names[i % 3 :] + names[: i % 3]
        runs = {name: _one_run(work, arms[name]) for name in order}
        for key in ("cpu", "wall"):
            field = f"{key}_s"
            base = (runs["off"][field] + runs["off again"][field]) / 2
            ratios[key].append(runs["on"][field] / base)
            ratios[f"aa_{key}"].append(runs["off again"][field] / runs["off"][field])
        sidecar.append(runs["on"]["sidecar_cpu_s"] / runs["on"]["cpu_s"])
        core.append(runs["on"]["sidecar_cpu_s"] / runs["on"]["wall_s"])
        print(
            f"   round {i + 1} ({', '.join(order)}): CPU s "
            + ", ".join(f"{n} {runs[n]['cpu_s']:.2f}" for n in names)
            + f"; ratio {ratios['cpu'][-1]:.3f}, A/A {ratios['aa_cpu'][-1]:.3f}",
            flush=True,
        )
    return {"ratios": ratios, "sidecar_per_pipeline_cpu": sidecar, "sidecar_core": core}


def _spread(values: list[float]) -> str:
    """Median and range of ``values``."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def sampler_cost(pid: int, n: int = 400) -> dict[str, float]:
    """CPU microseconds per sample of ``pid`` alone, and per scan of ``/proc`` for a tree."""
    tree = proc.ProcessTree(pid, descendants=False)
    t0 = time.process_time()
    for _ in range(n):
        tree.sample()
    alone = (time.process_time() - t0) / n * 1e6
    tree = proc.ProcessTree(pid, descendants=True, rescan_s=0.0)
    t0 = time.process_time()
    for _ in range(n // 10):
        tree.pids()
    return {"alone": alone, "scan": (time.process_time() - t0) / (n // 10) * 1e6}


def sampled_run(work: Path, hz: float = 20.0) -> tuple[dict[str, Any], list[proc.ProcSample]]:
    """One run with the per-stage peak mark, sampled from this process at ``hz``."""
    pipe = Pipeline(work, peak_memory=True)
    tree = proc.ProcessTree(pipe.p.pid, descendants=False)
    samples: list[proc.ProcSample] = []
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                samples.append(tree.sample())
            except proc.ProcessGone:
                return
            done.wait(1.0 / hz)

    thread = threading.Thread(target=loop)
    thread.start()
    pipe.go()
    report = pipe.wait()
    done.set()
    thread.join()
    return report, samples


def _cpu_at(samples: list[proc.ProcSample], t: float) -> float:
    """Cumulative CPU at ``t``, linear between the samples around it."""
    for a, b in itertools.pairwise(samples):
        if a.time <= t <= b.time:
            return a.cpu_s + (b.cpu_s - a.cpu_s) * (t - a.time) / (b.time - a.time)
    return samples[-1].cpu_s if t > samples[-1].time else samples[0].cpu_s


def attribute(stages: list[dict[str, Any]], samples: list[proc.ProcSample]) -> list[dict[str, Any]]:
    """Outside CPU and peak RSS per stage from the samples inside its time window."""
    rows = []
    for st in stages:
        t0, t1 = st["unix_start"], st["unix_start"] + st["wall_s"]
        inside = [s.rss_bytes for s in samples if t0 <= s.time <= t1]
        rows.append(
            {
                "name": st["name"],
                "wall_s": st["wall_s"],
                "cpu_in": st["cpu_s"],
                "thread_cpu_in": st["thread_cpu_s"],
                "cpu_out": _cpu_at(samples, t1) - _cpu_at(samples, t0),
                "peak_in": st["peak_rss_bytes"],
                "peak_out": max(inside) if inside else None,
                "n": len(inside),
            }
        )
    return rows


def recorder_cost(n: int = 2000) -> dict[str, float]:
    """Microseconds of one empty stage with spans going to a batch processor."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from shutterline.telemetry import stages, tracing

    class Null(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracing.configure("bench").add_span_processor(BatchSpanProcessor(Null()))
    out = {}
    for peak in (False, True):
        held = bytearray(500 * 2**20)  # 500 MiB resident: clear_refs walks its page tables
        held[::4096] = b"\1" * len(held[::4096])
        rec = stages.StageRecorder(attributes={"visit": 1, "detector": 2}, peak_memory=peak)
        t0 = time.perf_counter()
        for _ in range(n):
            with rec.stage("x"):
                pass
        out["peak_memory" if peak else "plain"] = (time.perf_counter() - t0) / n * 1e6
        del held
    return out


#: Outside sampling rates compared (one 20 Hz stream, decimated): at 1 Hz a stage of an
#: unloaded machine (0.1 to 1.5 s) has about as many samples as one here at 4-8 Hz.
RATES = (1.0, 2.0, 4.0, 20.0)


def _decimate(samples: list[proc.ProcSample], hz: float, of: float) -> list[proc.ProcSample]:
    return samples[:: max(1, round(of / hz))]


def report_table(rows_by_hz: dict[float, list[dict[str, Any]]]) -> list[str]:
    """Per stage: in-process CPU and peak against outside figures at each rate."""
    mb = 2**20
    rates = sorted(rows_by_hz)
    head = f"{'stage':<13}{'wall s':>7}{'cpu in':>8}{'thread':>8}"
    head += "".join(f"{f'out@{hz:g}':>9}" for hz in rates)
    head += f"{'peak in':>9}" + "".join(f"{f'out@{hz:g}':>9}" for hz in rates)
    lines = [head + "   (CPU s; peak MiB)"]
    for i, row in enumerate(rows_by_hz[rates[0]]):
        line = (
            f"{row['name']:<13}{row['wall_s']:7.2f}{row['cpu_in']:8.2f}{row['thread_cpu_in']:8.2f}"
        )
        line += "".join(f"{rows_by_hz[hz][i]['cpu_out']:9.2f}" for hz in rates)
        line += f"{row['peak_in'] / mb:9.0f}"
        for hz in rates:
            peak = rows_by_hz[hz][i]["peak_out"]
            line += f"{peak / mb:9.0f}" if peak else f"{'-':>9}"
        lines.append(line)
    return lines


def picture(report: dict[str, Any], samples: list[proc.ProcSample], path: Path) -> None:
    """CPU use and resident memory sampled from outside, over the in-process stage bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = report["unix_start"]
    t = [s.time - t0 for s in samples]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 4.8), sharex=True)
    colors = [plt.get_cmap("tab20")(i) for i in range(20)]
    cpu0 = _cpu_at(samples, report["stages"][0]["unix_start"])
    ends, inside = [], cpu0
    for i, st in enumerate(report["stages"]):
        a, w = st["unix_start"] - t0, st["wall_s"]
        for ax in (ax1, ax2):
            ax.axvspan(a, a + w, color=colors[i % 20], alpha=0.35, lw=0)
        ax2.text(
            a + w / 2,
            0.02,
            st["name"],
            rotation=90,
            fontsize=7,
            ha="center",
            va="bottom",
            transform=ax2.get_xaxis_transform(),
        )
        inside += st["cpu_s"]
        ends.append((a + w, inside))
    ax1.plot(t, [s.cpu_s for s in samples], color="k", lw=0.8, label="outside: /proc stat")
    ax1.plot(
        *zip(*ends, strict=True), "o", color="tab:red", ms=3, label="inside: stage CPU, summed"
    )
    ax1.legend(loc="upper left", fontsize=7)
    ax1.set_ylabel("CPU seconds")
    ax2.plot(t, [s.rss_bytes / 2**20 for s in samples], color="k", lw=0.8, label="VmRSS")
    peaks = [
        (st["unix_start"] - t0, st["wall_s"], st["peak_rss_bytes"] / 2**20)
        for st in report["stages"]
    ]
    for a, w, p in peaks:
        ax2.hlines(p, a, a + w, color="tab:red", lw=1.5)
    ax2.plot([], [], color="tab:red", label="stage peak (in-process VmHWM)")
    ax2.set_ylabel("resident MiB")
    ax2.set_xlabel("seconds since the run started")
    ax2.legend(loc="upper left", fontsize=7)
    ax1.set_title(
        f"one 2048x4096 detector, sampled from outside at {len(samples) / (t[-1] - t[0]):.0f} Hz"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


COMMAND = ".venv/bin/python tests/benchmarks/bench_telemetry.py"


def report_overhead(work: Path, repeat: int) -> list[tuple[str, str, str, str]]:
    """Part 1, printed; the rows for ``make bench``'s table."""
    print(f"1. overhead of the telemetry sidecar at 2 Hz ({repeat} rounds; load average "
          f"{os.getloadavg()[0]:.1f}):")  # fmt: skip
    o = overhead(work, repeat, 2.0)
    r = o["ratios"]
    lines = [
        ("pipeline CPU, watched / unwatched", r["cpu"], "< 1.02"),
        ("pipeline CPU, unwatched / unwatched (noise)", r["aa_cpu"], "1"),
        ("pipeline wall, watched / unwatched", r["wall"], "< 1.02"),
        ("pipeline wall, unwatched / unwatched (noise)", r["aa_wall"], "1"),
        ("sidecar CPU / pipeline CPU", o["sidecar_per_pipeline_cpu"], "< 0.02"),
        ("sidecar CPU / pipeline wall (share of a core)", o["sidecar_core"], ""),
    ]
    for label, values, _ in lines:
        print(f"   {label:46} median {_spread(values)}")
    return [(f"telemetry at 2 Hz: {lb}", _spread(v), t, COMMAND) for lb, v, t in lines]


def report_attribution(work: Path) -> tuple[dict[str, Any], list[proc.ProcSample]]:
    """Print how well the outside samples at each rate match the in-process stage spans."""
    print("3. in-process spans vs outside samples (same run, 20 Hz stream decimated):")
    report, samples = sampled_run(work)
    rows: dict[float, list[dict[str, Any]]] = {
        hz: attribute(report["stages"], _decimate(samples, hz, 20.0)) for hz in RATES
    }
    print("\n".join("   " + line for line in report_table(rows)))
    total_in = sum(r["cpu_in"] for r in rows[20])
    for hz in RATES:
        err = [abs(r["cpu_out"] - r["cpu_in"]) for r in rows[hz]]
        blind = sum(1 for r in rows[hz] if r["peak_out"] is None)
        missed = [(r["peak_in"] - r["peak_out"]) / 2**20 for r in rows[hz] if r["peak_out"]]
        threads = max(abs(r["cpu_in"] - r["thread_cpu_in"]) for r in rows[hz])
        print(
            f"   @{hz:>2.0f} Hz: CPU per stage |out - in| median "
            f"{statistics.median(err):.3f} s, max {max(err):.3f} s "
            f"(stages total {total_in:.2f} s); stages with no sample: "
            f"{blind}/{len(rows[hz])}"
        )
        print(
            f"          peak RSS per stage missed by the samples: median "
            f"{statistics.median(missed):.0f} MiB, max {max(missed):.0f} MiB"
        )
    print(f"   CPU of other threads inside a stage window: up to {threads:.3f} s")
    return report, samples


def main() -> None:
    """Measure and print medians and ratios."""
    parser = argparse.ArgumentParser()
    # Rounds in multiples of 3: each arm then runs as often first, second and last.
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="3 rounds of the overhead")
    parser.add_argument("--picture", type=Path, default=ROOT / ".bench" / "telemetry_timeline.png")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--peak-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.repeat = min(args.repeat, 3)
    bench_pipeline.prepared_night()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        figures = report_overhead(work, args.repeat)
        print("2. sampler CPU:")
        cost = sampler_cost(os.getpid())
        entries = len(os.listdir("/proc"))
        print(
            f"   per sample of one process {cost['alone']:.0f} us; per scan of /proc for "
            f"descendants ({entries} entries, at most every 5 s) {cost['scan']:.0f} us; "
            f"at 2 Hz: {(2 * cost['alone'] + cost['scan'] / 5) / 1e4:.2f}% of one core"
        )
        report, samples = report_attribution(work)
        print("4. in-process recorder per stage:")
        rc = recorder_cost()
        print(
            f"   {rc['plain']:.0f} us; with the per-stage peak reset at 500 MiB resident "
            f"{rc['peak_memory']:.0f} us"
        )
        picture(report, samples, args.picture)
        print(f"picture: {args.picture}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"(children CPU {usage.ru_utime + usage.ru_stime:.0f} s)")
    _results.record("bench_telemetry", figures)


if __name__ == "__main__":
    main()
