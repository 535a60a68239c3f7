"""Finding the pipeline container's process from a sidecar in the same process namespace.

In a worker pod (``shareProcessNamespace: true``) every container's processes are visible in
``/proc``; the pipeline is the one whose command line is ``shutterline pod run`` (in the
analysis pod, ``shutterline pod analyze``, container ``analysis``). On the test
bed, whose node agent runs containers as host processes, the agent writes each container's
process id to ``$TESTBED_POD_DIR/pids/<container>`` (docs/testbed.md), which is exact where a
scan of the host's ``/proc`` could pick another pod's pipeline.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["find_pipeline", "is_pipeline_command", "scan_proc", "wait_for_pipeline"]

#: The pipeline container's command (docs/architecture.md, "The worker pod").
PIPELINE_COMMAND = ("pod", "run")
#: The main container of the analysis pod and its command ("The analysis pod").
ANALYSIS_COMMAND = ("pod", "analyze")
_CONTAINERS = ("pipeline", "analysis")


def is_pipeline_command(argv: Sequence[str]) -> bool:
    """Whether ``argv`` runs ``shutterline pod run`` or ``pod analyze`` (as a script or
    ``python -m``)."""
    for i, arg in enumerate(argv):
        name = os.path.basename(arg)
        if name == "shutterline" or arg in ("shutterline.cli.main", "shutterline.cli"):
            # Options such as -v may come between the program and its subcommand.
            rest = [a for a in argv[i + 1 :] if not a.startswith("-")]
            return tuple(rest[:2]) in (PIPELINE_COMMAND, ANALYSIS_COMMAND)
    return False


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _from_pid_file(pod_dir: str) -> int | None:
    for container in _CONTAINERS:
        try:
            text = (Path(pod_dir) / "pids" / container).read_text().strip()
        except FileNotFoundError:
            continue
        if text.isdigit() and Path(f"/proc/{text}").exists():
            return int(text)
    return None  # not written yet, or left by an earlier run of the container


def find_pipeline(env: Mapping[str, str] | None = None) -> int | None:
    """The pipeline's process id now, or None if it has not started.

    ``TESTBED_POD_DIR`` in ``env`` selects the test bed's pid file; otherwise ``/proc`` is
    scanned for ``shutterline pod run`` (lowest pid: the container's first process, not a
    worker it forked).
    """
    env = os.environ if env is None else env
    if env.get("TESTBED_POD_DIR"):
        return _from_pid_file(env["TESTBED_POD_DIR"])
    found = scan_proc()
    return min(found) if found else None


def scan_proc() -> list[int]:
    """Every process in this namespace whose command line is ``shutterline pod run``."""
    me = os.getpid()
    return [
        int(name)
        for name in os.listdir("/proc")
        if name.isdigit() and int(name) != me and is_pipeline_command(_cmdline(int(name)))
    ]


def wait_for_pipeline(
    stop: threading.Event, poll_s: float, env: Mapping[str, str] | None = None
) -> int | None:
    """Poll `find_pipeline` until it answers or ``stop`` is set (then None)."""
    while not stop.is_set():
        pid = find_pipeline(env)
        if pid is not None:
            return pid
        stop.wait(poll_s)
    return None
