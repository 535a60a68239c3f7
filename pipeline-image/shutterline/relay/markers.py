"""The files beside the packets: the pipeline's markers and the relay's finish status.

Names and contents are the contract of docs/architecture.md ("The worker pod"):

* ``<visit>_<detector>.metrics.json``: the detector's broadcast record, written by the
  pipeline before its done marker;
* ``<visit>_<detector>.done``: ``{"status": "succeeded"|"failed", "alerts": n}``, written
  by the pipeline after its last packet;
* ``telemetry.json``: the telemetry sidecar's summary of the pipeline process, if any;
* ``relay.status.json``: written by the relay when it finishes.

Every write is atomic (temporary name, fsync, rename), so a reader sees a whole file or none.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

__all__ = [
    "STATUS",
    "TELEMETRY",
    "done_markers",
    "read_json",
    "write_done",
    "write_json",
    "write_metrics",
]

STATUS = "relay.status.json"
TELEMETRY = "telemetry.json"
_DONE = re.compile(r"^(\d+)_(\d+)\.done$")


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as JSON to ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(document, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """The JSON document at ``path``, or None if there is none (or it is not JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_metrics(spool: Path, visit: int, detector: int, record: dict[str, Any]) -> Path:
    """The pipeline's broadcast record of one detector (before its done marker)."""
    path = spool / f"{int(visit)}_{int(detector)}.metrics.json"
    write_json(path, record)
    return path


def write_done(spool: Path, visit: int, detector: int, status: str, alerts: int) -> Path:
    """The pipeline's done marker of one detector (after its last packet)."""
    path = spool / f"{int(visit)}_{int(detector)}.done"
    write_json(path, {"status": status, "alerts": int(alerts)})
    return path


def done_markers(spool: Path) -> dict[tuple[int, int], Path]:
    """``(visit, detector)`` -> done marker, for every detector the pipeline finished."""
    found: dict[tuple[int, int], Path] = {}
    try:
        names = os.listdir(spool)
    except FileNotFoundError:
        return found
    for name in names:
        match = _DONE.match(name)
        if match:
            found[(int(match.group(1)), int(match.group(2)))] = spool / name
    return found
