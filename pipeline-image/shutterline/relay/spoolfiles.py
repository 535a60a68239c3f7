"""The relay's side of the spool: packet names, scanning, reading and quarantine.

The pipeline's writer (`shutterline.alerts.spool`) renames each finished packet into place,
so a ``*.alert`` name is always a complete file; hidden temporary names never match.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
from pathlib import Path

from shutterline.alerts import spool as alert_spool

__all__ = ["QUARANTINE", "Packet", "quarantine", "read_packet", "scan_names"]

log = logging.getLogger(__name__)

#: Sub-directory of the spool where corrupt packets are moved, with a reason file beside each.
QUARANTINE = "quarantine"

_NAME = re.compile(r"^(?:(\d+)_(\d+)_)?(\d+)" + re.escape(alert_spool.SUFFIX) + "$")


@dataclasses.dataclass(frozen=True)
class Packet:
    """One spooled packet read into memory.

    Attributes
    ----------
    name
        File name inside the spool.
    payload
        The Confluent wire-format bytes.
    visit, detector
        From the name (``<visit>_<detector>_<id>.alert``); None for a bare ``<id>.alert``.
    name_id
        The alert id the name carries.
    spooled_at
        When the packet was renamed into the spool (inode change time, Unix seconds).
    """

    name: str
    payload: bytes
    visit: int | None
    detector: int | None
    name_id: int | None
    spooled_at: float

    @property
    def detector_key(self) -> tuple[int, int] | None:
        """``(visit, detector)`` or None."""
        if self.visit is None or self.detector is None:
            return None
        return (self.visit, self.detector)


def scan_names(directory: Path) -> list[str]:
    """Names of the finished packets in ``directory``, oldest writer order first (by name)."""
    try:
        with os.scandir(directory) as entries:
            names = [
                e.name
                for e in entries
                if e.name.endswith(alert_spool.SUFFIX) and not e.name.startswith(".")
            ]
    except FileNotFoundError:
        return []
    names.sort()
    return names


def read_packet(directory: Path | str, name: str) -> Packet | None:
    """The packet ``name``, or None if it has gone (discarded by a failed detector)."""
    match = _NAME.match(name)
    try:
        fd = os.open(os.path.join(directory, name), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        spooled_at = os.fstat(fd).st_ctime
        with os.fdopen(fd, "rb", closefd=False) as fh:
            payload = fh.read()
    finally:
        os.close(fd)
    visit = detector = name_id = None
    if match is not None:
        visit = int(match.group(1)) if match.group(1) else None
        detector = int(match.group(2)) if match.group(2) else None
        name_id = int(match.group(3))
    return Packet(name, payload, visit, detector, name_id, spooled_at)


def quarantine(directory: Path, name: str, reason: str) -> Path:
    """Move packet ``name`` to ``<spool>/quarantine/`` with a ``.reason`` file; log it."""
    target_dir = directory / QUARANTINE
    target_dir.mkdir(exist_ok=True)
    target = target_dir / name
    with contextlib.suppress(FileNotFoundError):
        os.replace(directory / name, target)
    (target_dir / f"{name}.reason").write_text(reason + "\n")
    log.error("quarantined corrupt packet %s -> %s: %s (not sent)", name, target, reason)
    return target
