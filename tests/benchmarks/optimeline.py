"""What `bench_operator_scale.py` sees of a run: two watches (Visits, Jobs, every namespace)
time every transition on arrival, so both ends of an interval see the same watch delay. Each
watch runs in a process of its own (``python -m tests.benchmarks.optimeline``), so that the
bench's threads creating Visits cannot delay them. (Measured with both side by side, 200
Visits at once at load 7-13: the p99s agreed within 0.02 s, so the bench's own process did not
delay them there; what delays a Job event is the API server, whose dispatch waits for every
watcher of the resource, the operator's included.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, watch
from tests.testbed.k8s import cluster

__all__ = ["TERMINAL", "Timeline", "Watches", "picture", "start"]

_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"Succeeded", "PartiallySucceeded", "Failed", "Rejected", "TimedOut"}


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
    """Stream events of ``group``/``plural`` into ``record`` (resumes on ends)."""
    objects = client.CustomObjectsApi(api)
    group_name, _, version = group.rpartition("/")
    version_kw: dict[str, Any] = {}
    while True:
        stream = watch.Watch()
        try:
            for event in stream.stream(
                objects.list_cluster_custom_object,
                group_name,
                version,
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


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    """Only what `Timeline` reads (a Job is kilobytes: the pipe carries a few dozen bytes)."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    return {
        "metadata": {
            "name": meta["name"],
            "ownerReferences": [{"name": r["name"]} for r in meta.get("ownerReferences") or []],
        },
        "spec": {k: spec[k] for k in ("suspend", "completions") if k in spec},
        "status": {k: status[k] for k in ("phase", "succeeded", "failed") if k in status},
    }


def _child(kubeconfig: str, group: str, plural: str) -> None:
    """In a process of its own: stream the watch as JSON lines ``[type, slim object, when]``
    (``when`` monotonic: one clock for every process of the machine)."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=kubeconfig)
    orphan = threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True)
    orphan.start()

    def emit(kind: str, obj: dict[str, Any], now: float) -> None:
        sys.stdout.write(json.dumps([kind, _slim(obj), now]) + "\n")
        sys.stdout.flush()

    _watch_forever(api, group, plural, emit)


def _relay(process: subprocess.Popen[str], record: Any) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        kind, obj, now = json.loads(line)
        record(kind, obj, now)


class Watches:
    """The watch processes of `start`; `stop` ends them."""

    def __init__(self, processes: list[subprocess.Popen[str]]) -> None:
        self.processes = processes

    def stop(self) -> None:
        """Terminate the processes (each also ends when this process does)."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def start(bed: cluster.Cluster, timeline: Timeline) -> Watches:
    """Watch Visits and Jobs in every namespace, each in a process of its own, so that the
    bench's own threads (creating Visits, the probe) cannot delay the watch events: each
    event is timed on arrival there, and a daemon thread here records it. Returns them."""
    processes = []
    for group, plural, record in (
        ("shutterline.io/v1alpha1", "visits", timeline.visit),
        ("batch/v1", "jobs", timeline.job),
    ):
        argv = [sys.executable, "-m", __name__, str(bed.kubeconfig), group, plural]
        # stdin: a pipe only this process holds; its end (here too) ends the child.
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=_ROOT
        )
        threading.Thread(target=_relay, args=(process, record), daemon=True).start()
        processes.append(process)
    return Watches(processes)


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


if __name__ == "__main__":
    _child(*sys.argv[1:4])
