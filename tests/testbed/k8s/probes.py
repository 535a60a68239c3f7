"""Exec readiness probes on the node agent: the container's command, environment and mount
rewriting, run every ``periodSeconds``; ready after ``successThreshold`` successes in a row,
not ready after ``failureThreshold`` failures (the kubelet's rules, without its jitter).

Only ``exec`` probes are run; a container with an ``httpGet``/``tcpSocket``/``grpc``
readiness probe, like one without a probe, is ready while it runs.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ExecProbe", "exec_probe"]


@dataclass
class ExecProbe:
    """One container's readiness probe and its current verdict."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    not_before: float = field(default_factory=time.monotonic)
    ready: bool = False
    successes: int = 0
    failures: int = 0

    def step(self) -> bool:
        """Run the probe if it is due; True when the verdict changed."""
        now = time.monotonic()
        if now < self.not_before:
            return False
        self.not_before = now + self.period
        try:
            code = subprocess.run(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=self.timeout,
                check=False,
            ).returncode
        except (OSError, subprocess.TimeoutExpired):
            code = 1
        if code == 0:
            self.successes, self.failures = self.successes + 1, 0
            verdict = self.ready or self.successes >= self.success_threshold
        else:
            self.successes, self.failures = 0, self.failures + 1
            verdict = self.ready and self.failures < self.failure_threshold
        changed, self.ready = verdict != self.ready, verdict
        return changed


def exec_probe(
    spec: dict[str, Any], argv: list[str], env: dict[str, str], cwd: Path
) -> ExecProbe | None:
    """The `ExecProbe` of a container's ``readinessProbe`` (already rewritten ``argv``), or
    None when it has no exec readiness probe."""
    probe = spec.get("readinessProbe") or {}
    if "exec" not in probe:
        return None
    return ExecProbe(
        argv=argv,
        env=env,
        cwd=cwd,
        period=float(probe.get("periodSeconds", 10)),
        timeout=float(probe.get("timeoutSeconds", 1)),
        success_threshold=int(probe.get("successThreshold", 1)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
        not_before=time.monotonic() + float(probe.get("initialDelaySeconds", 0)),
    )
