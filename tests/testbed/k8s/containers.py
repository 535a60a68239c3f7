"""One container of a pod run as a local process group: start, poll, terminate, restart.

A container is a process in its own session (so its whole group can be signalled), with its
output appended to ``<container dir>/<restartCount>.log``. Its state follows the kubelet's:
``waiting`` (with a reason), ``running`` or ``terminated`` (exit code, reason, message).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.testbed import procs
from tests.testbed.k8s import kubeapi

__all__ = ["DEFAULT_TERMINATION_PATH", "ContainerRun"]

DEFAULT_TERMINATION_PATH = "/dev/termination-log"
# The kubelet's limits on a termination message.
_MESSAGE_BYTES = 4096
_FALLBACK_LINES = 80
_FALLBACK_BYTES = 2048


@dataclass
class ContainerRun:
    """The runtime record of one container: its process and the state the kubelet reports.

    ``kind`` is ``init`` (run to completion, in order), ``sidecar`` (an init container with
    ``restartPolicy: Always``) or ``main``.
    """

    spec: dict[str, Any]
    kind: str
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    state: str = "waiting"
    reason: str = "PodInitializing"
    message: str = ""
    started_at: str | None = None
    terminated: dict[str, Any] | None = None
    last_terminated: dict[str, Any] | None = None
    restart_count: int = 0
    not_before: float = 0.0
    final: bool = False
    pids: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The container's name."""
        return str(self.spec["name"])

    @property
    def termination_file(self) -> Path:
        """Host file standing in for the container's ``terminationMessagePath``."""
        return self.directory / "termination-log"

    @property
    def termination_path(self) -> str:
        """The ``terminationMessagePath`` as the container names it."""
        return str(self.spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)

    def log_path(self) -> Path:
        """The log of the current (or last) run of this container."""
        return self.directory / f"{self.restart_count}.log"

    def due(self) -> bool:
        """Whether a waiting container may be started now (back-off elapsed)."""
        return self.state == "waiting" and time.monotonic() >= self.not_before

    def wait(self, reason: str, message: str, retry_after: float) -> None:
        """Stay waiting with ``reason`` and try again after ``retry_after`` seconds."""
        self.state, self.reason, self.message = "waiting", reason, message
        self.not_before = time.monotonic() + retry_after

    def start(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        """Start the process; a command that cannot run terminates with ``StartError``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.termination_file.write_text("")
        self.started_at = kubeapi.now()
        try:
            with open(self.log_path(), "ab") as out:
                self.proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as error:
            self.proc = None
            self._terminate_record(128, "StartError", f"failed to start {argv[0]!r}: {error}")
            return
        self.pids.append(self.proc.pid)
        self.state, self.reason, self.message = "running", "", ""

    def poll(self) -> bool:
        """Record the exit of a running process; True when the state changed."""
        if self.state != "running" or self.proc is None:
            return False
        code = self.proc.poll()
        if code is None:
            return False
        # A container's processes die with its first one, as in a PID namespace.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        exit_code = code if code >= 0 else 128 - code
        self._terminate_record(exit_code, "Completed" if exit_code == 0 else "Error", None)
        return True

    def _termination_message(self, exit_code: int) -> str:
        message = ""
        with contextlib.suppress(OSError):
            message = self.termination_file.read_bytes()[:_MESSAGE_BYTES].decode(errors="replace")
        fallback = self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not message and fallback and exit_code != 0:
            message = procs.tail(self.log_path(), _FALLBACK_LINES)[-_FALLBACK_BYTES:]
        return message

    def _terminate_record(self, exit_code: int, reason: str, message: str | None) -> None:
        self.state = "terminated"
        self.terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": self.started_at,
            "finishedAt": kubeapi.now(),
            "containerID": self.container_id(),
        }
        text = message if message is not None else self._termination_message(exit_code)
        if text:
            self.terminated["message"] = text

    def container_id(self) -> str:
        """``testbed://<pid>`` of the current process (tests use it to find the process)."""
        return f"testbed://{self.proc.pid}" if self.proc is not None else ""

    def schedule_restart(self, delay: float) -> None:
        """Keep the last termination as ``lastState`` and start again after ``delay`` s."""
        self.last_terminated, self.terminated = self.terminated, None
        self.restart_count += 1
        self.proc = None
        self.wait("CrashLoopBackOff", f"back-off {delay:.1f}s restarting {self.name}", delay)

    def terminate(self, grace: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; record the exit."""
        if self.state == "waiting":
            self.final = True
            return
        if self.state != "running" or self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=max(grace, 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.poll()
        self.final = True
