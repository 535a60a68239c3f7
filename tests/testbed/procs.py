"""Process plumbing shared by every test-bed component: ports, logs, health waits."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ComponentError",
    "ManagedProcess",
    "cache_dir",
    "free_port",
    "tail",
    "wait_for_port",
    "wait_process_ready",
    "wait_until",
]


class ComponentError(RuntimeError):
    """A test-bed component failed to build or start; the message names it and shows its log."""


def cache_dir(*parts: str) -> Path:
    """``~/.cache/shutterline/testbed/<parts>``, created on demand."""
    root = Path(os.environ.get("SHUTTERLINE_CACHE", Path.home() / ".cache" / "shutterline"))
    path = root.joinpath("testbed", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    if not path.exists():
        return f"(no log at {path})"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, log: Path | None = None
) -> None:
    """Poll ``condition`` until true; on time-out raise `ComponentError` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if condition():
                return
        time.sleep(0.2)
    detail = f"\n--- tail of {log} ---\n{tail(log)}" if log is not None else ""
    raise ComponentError(f"{what} not ready after {timeout:.0f} s{detail}")


def wait_for_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""

    def accepting() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    wait_until(accepting, timeout, what, log)


@dataclass
class ManagedProcess:
    """A component process with its own log file, stopped with SIGTERM then SIGKILL."""

    name: str
    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        """Start the process in its own session, output to ``log``."""
        if shutil.which(self.argv[0]) is None and not Path(self.argv[0]).exists():
            raise ComponentError(f"{self.name}: executable {self.argv[0]} not found")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **(self.env or {}))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                list(self.argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    def check_alive(self) -> None:
        """Raise `ComponentError` with the log tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ComponentError(
                f"{self.name} exited with code {self.proc.returncode}\n"
                f"--- tail of {self.log} ---\n{tail(self.log)}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the whole process group; kill it if it does not go in ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def wait_process_ready(
    process: ManagedProcess, condition: Callable[[], bool], timeout: float, what: str
) -> None:
    """Poll ``condition`` until true, failing at once (with the log tail) if ``process`` dies.

    On failure the process is stopped before `ComponentError` is raised.
    """
    deadline = time.monotonic() + timeout
    try:
        while True:
            process.check_alive()
            with contextlib.suppress(Exception):
                if condition():
                    return
            if time.monotonic() > deadline:
                raise ComponentError(
                    f"{what} not ready after {timeout:.0f} s\n"
                    f"--- tail of {process.log} ---\n{tail(process.log)}"
                )
            time.sleep(0.1)
    except ComponentError:
        process.stop()
        raise
