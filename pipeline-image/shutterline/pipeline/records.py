"""What a pod's pipeline container leaves behind: spool records and its termination message.

The spool gets ``<visit>_<detector>.metrics.json`` (the detector's broadcast record) and
then ``<visit>_<detector>.done`` (status and alert count), each written atomically; the
relay publishes the first and finishes on the second. With a broker configured the pipeline
then waits for the relay's ``relay.status.json``, and exits 69 itself when the relay gave
up, so the Job runs the detector again. The termination message (at most 4 KiB of JSON) is
what the operator folds into the Visit's per-detector status.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from shutterline import exceptions
from shutterline.pipeline import settings as settings_mod

__all__ = [
    "RELAY_STATUS",
    "PodResult",
    "finish",
    "termination_path",
    "write_termination_message",
]

log = logging.getLogger(__name__)

RELAY_STATUS = "relay.status.json"
#: Stages that are not on the path from the raw landing to the last alert.
_OFF_PATH = ("preload", "wait_raw", "raw", "products")
#: The kubelet keeps the first 4096 bytes of a termination message.
_MESSAGE_BYTES = 4096
#: Beyond the relay's own give-up time, how long to wait for its status file.
_RELAY_GRACE_S = 30.0


@dataclasses.dataclass
class PodResult:
    """The outcome of one detector in a pod; times are unix seconds."""

    visit: int
    detector: int
    status: str = "succeeded"
    reason: str = ""
    exit_code: int = 0
    dia_sources: int = 0
    alerts: int = 0
    raw_seen_at: float | None = None
    last_alert_at: float | None = None
    acked_at: float | None = None
    stages: dict[str, float] = dataclasses.field(default_factory=dict)
    quantities: dict[str, Any] = dataclasses.field(default_factory=dict)

    def fail(self, exc: BaseException, exit_code: int) -> None:
        """Record a failure (the first one wins)."""
        if self.status == "failed":
            return
        self.status, self.exit_code = "failed", exit_code
        self.reason = f"{type(exc).__name__}: {exc}"

    @property
    def stage_seconds(self) -> float:
        """The stages alone from the raw to the last alert (its transfer not included)."""
        return sum(v for k, v in self.stages.items() if k not in _OFF_PATH)

    @property
    def critical_seconds(self) -> float | None:
        """From the raw being seen in the backbone to the last alert spooled."""
        if self.raw_seen_at is None or self.last_alert_at is None:
            return None
        return self.last_alert_at - self.raw_seen_at

    def metrics(self) -> dict[str, Any]:
        """The broadcast record of the detector (the spool's ``.metrics.json``)."""
        return {
            "visit": self.visit,
            "detector": self.detector,
            "status": self.status,
            "reason": self.reason,
            "diaSources": self.dia_sources,
            "alerts": self.alerts,
            "rawArrivedAt": _rfc3339(self.raw_seen_at),
            "lastAlertAt": _rfc3339(self.last_alert_at),
            "criticalPathSeconds": self.critical_seconds,
            "stageSeconds": self.stage_seconds,
            "stages": self.stages,
            "quantities": self.quantities,
        }

    def termination_message(self) -> str:
        """The JSON termination message, cut to fit the kubelet's 4 KiB."""
        message = {
            "status": self.status,
            "reason": self.reason,
            "exitCode": self.exit_code,
            "diaSources": self.dia_sources,
            "alerts": self.alerts,
            "rawArrivedAt": _rfc3339(self.raw_seen_at),
            "lastAlertAt": _rfc3339(self.last_alert_at),
            "ackedAt": _rfc3339(self.acked_at),
            "criticalPathSeconds": _round(self.critical_seconds),
            "stageSeconds": _round(self.stage_seconds),
            "stages": {k: round(v, 3) for k, v in self.stages.items()},
        }
        text = json.dumps(message)
        if len(text.encode()) > _MESSAGE_BYTES:
            spare = _MESSAGE_BYTES - len(text.encode()) + len(self.reason.encode()) - 16
            message["reason"] = self.reason.encode()[: max(spare, 0)].decode(errors="ignore")
            text = json.dumps(message)
        return text


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _rfc3339(unix: float | None) -> str | None:
    if unix is None:
        return None
    when = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_atomic(path: Path, text: str) -> None:
    """``text`` at ``path``, complete or not at all (a hidden temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(partial, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def _wait_for_relay(settings: settings_mod.Settings, result: PodResult) -> None:
    """Wait for the relay's status; a relay that gave up (or never said) fails with 69."""
    path = settings.spool / RELAY_STATUS
    deadline = time.monotonic() + settings.relay_give_up_s + _RELAY_GRACE_S
    while not path.is_file():
        if time.monotonic() > deadline:
            reason = f"the alert relay wrote no {RELAY_STATUS} within {deadline:.0f} s"
            result.fail(exceptions.RelayUnavailableError(reason), exceptions.EXIT_RELAY_UNAVAILABLE)
            return
        time.sleep(0.1)
    status = json.loads(path.read_text())
    if status.get("state") == "drained":
        result.acked_at = status.get("last_delivery")
        return
    reason = f"the alert relay gave up: {status.get('reason', 'no reason given')}"
    result.fail(exceptions.RelayUnavailableError(reason), exceptions.EXIT_RELAY_UNAVAILABLE)


def finish(settings: settings_mod.Settings, result: PodResult) -> int:
    """Write the metrics record and the done marker, wait for the relay; the exit code."""
    stem = f"{result.visit}_{result.detector}"
    _write_atomic(settings.spool / f"{stem}.metrics.json", json.dumps(result.metrics()))
    done = {"status": result.status, "alerts": result.alerts}
    _write_atomic(settings.spool / f"{stem}.done", json.dumps(done))
    if settings.kafka_bootstrap:
        _wait_for_relay(settings, result)
    return result.exit_code


def termination_path(env: Mapping[str, str]) -> Path | None:
    """Where the termination message goes: the test bed names its file; in a pod the
    kubelet has made ``/dev/termination-log``; elsewhere nowhere (never create it in /dev)."""
    named = env.get("TESTBED_TERMINATION_MESSAGE_PATH")
    if named:
        return Path(named)
    default = Path("/dev/termination-log")
    return default if default.is_file() else None


class _Terminating(Protocol):
    def termination_message(self) -> str: ...


def write_termination_message(result: _Terminating, env: Mapping[str, str]) -> None:
    """Write the termination message of a prompt or analysis pod (and log it, for a run
    outside a pod)."""
    text = result.termination_message()
    path = termination_path(env)
    log.info("termination message: %s", text)
    if path is None:
        return
    try:
        path.write_text(text)
    except OSError as exc:
        log.warning("could not write the termination message to %s: %s", path, exc)
