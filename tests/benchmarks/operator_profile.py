"""Where the operator's time goes during a phase of `bench_operator_scale.py`: its own
metrics (client-side time per API operation, reconcile steps, the creators' queue) and its
CPU, as what grew between two `take` samples; the steps of each Visit -> Job (`steps`); and
the API server's own latency for a Job create under the same load (`Probe`)."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import urllib3
from kubernetes import client
from prometheus_client import parser

__all__ = ["PERSISTED", "Probe", "Sample", "Sampler", "lines", "sampler", "stacks", "steps", "take"]

#: Visit -> Job without either watch's delay: from the answer to the Visit's create (the
#: bench's) to the answer to its Job's (the operator's); each object is stored by then.
PERSISTED = "Visit stored -> Job stored (both creates answered)"

#: Histograms reported (metric name -> the label that splits it, "" for none).
_HISTOGRAMS = {
    "shutterline_api_request_seconds": "operation",
    "shutterline_reconcile_seconds": "step",
    "shutterline_create_wait_seconds": "",
}


@dataclasses.dataclass(frozen=True)
class Sample:
    """Histogram sums and counts by (metric, label value), the process's CPU, a clock."""

    sums: dict[tuple[str, str], float]
    counts: dict[tuple[str, str], float]
    cpu_s: float
    at: float


def _cpu_seconds(pid: int) -> float:
    # utime and stime, fields 14 and 15 of /proc/PID/stat (after the parenthesised name).
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def take(metrics_text: str, pid: int) -> Sample:
    """Parse the operator's ``/metrics`` text and read its CPU time now."""
    sums: dict[tuple[str, str], float] = collections.defaultdict(float)
    counts: dict[tuple[str, str], float] = collections.defaultdict(float)
    for family in parser.text_string_to_metric_families(metrics_text):
        if family.name not in _HISTOGRAMS:
            continue
        for sample in family.samples:
            key = (family.name, sample.labels.get(_HISTOGRAMS[family.name], ""))
            if sample.name.endswith("_sum"):
                sums[key] += sample.value
            elif sample.name.endswith("_count"):
                counts[key] += sample.value
    return Sample(dict(sums), dict(counts), _cpu_seconds(pid), time.monotonic())


def lines(before: Sample, after: Sample) -> list[str]:
    """One line per operation and step that ran: calls, mean, total thread-seconds; then CPU."""
    out = []
    for key in sorted(after.counts, key=lambda k: -(after.sums[k] - before.sums.get(k, 0.0))):
        calls = after.counts[key] - before.counts.get(key, 0.0)
        if calls <= 0:
            continue
        spent = after.sums[key] - before.sums.get(key, 0.0)
        name = key[0].removeprefix("shutterline_").removesuffix("_seconds")
        label = f"{name} {key[1]}".strip()
        out.append(f"{label:40s} {calls:6.0f} calls, mean {spent / calls:.3f} s, {spent:7.1f} s")
    wall = after.at - before.at
    cpu = after.cpu_s - before.cpu_s
    out.append(f"operator CPU {cpu:.1f} s in {wall:.1f} s of wall ({cpu / wall:.0%} of a core)")
    return out


class Probe(threading.Thread):
    """Creates a suspended Job directly every ``every_s`` while running: the API server's own
    latency for the write the operator waits on, measured under the same load."""

    def __init__(self, api: client.ApiClient, namespace: str, every_s: float = 0.25) -> None:
        super().__init__(name="probe", daemon=True)
        self.batch = client.CustomObjectsApi(api)
        self.namespace, self.every_s = namespace, every_s
        #: (when it started, monotonic; its round trip, s) of each create.
        self.samples: list[tuple[float, float]] = []
        self.halt = threading.Event()
        self.count = 0

    def run(self) -> None:
        """Create until `stop`."""
        while not self.halt.wait(self.every_s):
            self.count += 1
            job = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": f"probe-{self.count}-{int(time.time())}"},
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
            try:
                self.batch.create_namespaced_custom_object(
                    "batch", "v1", self.namespace, "jobs", job
                )
            except (client.ApiException, urllib3.exceptions.HTTPError) as error:
                print(f"  (probe: {error.__class__.__name__}; not counted)", flush=True)
                continue
            self.samples.append((started, time.monotonic() - started))

    def stop(self, start: float, end: float) -> list[float]:
        """Stop; the round trips of the creates started between ``start`` and ``end``
        (monotonic; the span in which the operator was creating Jobs)."""
        self.halt.set()
        self.join(timeout=30)
        return [took for at, took in self.samples if start <= at <= end]


def steps(
    times: Path, seen: dict[str, float], made: dict[str, float], posted: dict[str, float]
) -> dict[str, list[float]]:
    """Per Visit, from the operator's ``SHUTTERLINE_OPERATOR_TIMES`` lines and the bench
    (``seen``: its watch first saw the Visit, ``made``: its Job; ``posted``: the Visit's create
    was answered; one monotonic clock): where Visit -> Job went, and `PERSISTED`."""
    out: dict[str, list[float]] = collections.defaultdict(list)
    for text in times.read_text().splitlines() if times.exists() else []:
        line = json.loads(text)
        name = line["visit"]
        if name not in seen or name not in made or name not in posted:
            continue
        out["Visit event reaches the operator (vs the bench's watch)"].append(
            line["offered"] - seen[name]
        )
        out["waits for a creator thread"].append(line["started"] - line["offered"])
        out["the creator's step (the Job POST)"].append(line["done"] - line["started"])
        out["Job event reaches the bench's watch"].append(made[name] - line["done"])
        out[PERSISTED].append(line["done"] - posted[name])
    return dict(out)


#: py-spy (`bench_operator_scale.py --py-spy`): fetched once into the project's cache.
PY_SPY = Path.home() / ".cache" / "shutterline" / "tools" / "py-spy"
PY_SPY_VERSION = "0.4.1"


class Sampler:
    """py-spy sampling process ``pid`` into ``out`` (collapsed stacks, one per thread) until
    `stop`, which summarises where its CPU went. With ``gil``, only the thread holding the
    GIL is sampled: a thread waiting to take the GIL back shows in its last Python frame
    otherwise, which counts a wait as work there."""

    def __init__(self, pid: int, out: Path, rate: int = 250, gil: bool = False) -> None:
        self.out = out
        command = [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(rate)]
        command += ["--nonblocking", "--threads", "--format", "raw", "--output", str(out)]
        command += ["--gil"] if gil else []
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self, top: int = 12) -> list[str]:
        """End the sampling; the ``top`` functions by samples in them and by own samples."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        if not self.out.exists():
            return [f"py-spy wrote nothing: {err.decode(errors='replace').strip()[-300:]}"]
        return [f"py-spy samples of the operator: {self.out}", *stacks(self.out, top)]


def stacks(path: Path, top: int) -> list[str]:
    """Lines: the samples per thread (named without their numbers), then the ``top``
    functions with the share of samples they were on the stack (inclusive) and at its top
    (own)."""
    threads: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        if not frames or not count.isdigit():
            continue
        # "func (path/file.py:line)" -> "func (file.py)": a function, whatever its line
        names = [_function(f) for f in frames]
        threads[thread.split(": ", 1)[-1].rstrip("0123456789_")] += int(count)
        own[names[-1]] += int(count)
        for name in set(names):
            inclusive[name] += int(count)
    total = sum(threads.values())
    if not total:
        return ["no samples"]
    out = [f"{total} samples; by thread: " + ", ".join(f"{t} {n}" for t, n in threads.items())]
    out.append("on the stack (inclusive):")
    out += [f"  {100 * n / total:5.1f} %  {f}" for f, n in inclusive.most_common(top)]
    out.append("at the top of the stack (own):")
    out += [f"  {100 * n / total:5.1f} %  {f}" for f, n in own.most_common(top)]
    return out


def _function(frame: str) -> str:
    """py-spy's ``func (path/file.py:line)`` as ``func (file.py)``: a function, any line."""
    func, _, where = frame.partition(" (")
    return f"{func} ({where.rsplit('/', 1)[-1].split(':')[0]})"


def sampler(directory: Path | None, pid: int, name: str, gil: bool = False) -> Sampler | None:
    """A `Sampler` of ``pid`` writing ``directory/name.txt``; None without a directory."""
    if directory is None:
        return None
    if not PY_SPY.exists():
        raise SystemExit(
            f"--py-spy needs {PY_SPY}: pip download py-spy=={PY_SPY_VERSION} --no-deps, "
            "and copy the wheel's scripts/py-spy there"
        )
    directory.mkdir(parents=True, exist_ok=True)
    return Sampler(pid, directory / f"{name}.txt", gil=gil)
