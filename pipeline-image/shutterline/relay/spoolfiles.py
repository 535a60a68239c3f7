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
import struct
from pathlib import Path

from shutterline.alerts import spool as alert_spool

__all__ = ["QUARANTINE", "Packet", "parse_name", "quarantine", "read_packet", "scan_names"]

log = logging.getLogger(__name__)

#: Sub-directory of the spool where corrupt packets are moved, with a reason file beside each.
QUARANTINE = "quarantine"

_CRC = struct.Struct(">I")
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
    checksum
        The CRC-32 the writer recorded (`alert_spool.CHECKSUM_XATTR`), or None.
    """

    name: str
    payload: bytes
    visit: int | None
    detector: int | None
    name_id: int | None
    spooled_at: float
    checksum: int | None = None

    @property
    def detector_key(self) -> tuple[int, int] | None:
        """``(visit, detector)`` or None."""
        if self.visit is None or self.detector is None:
            return None
        return (self.visit, self.detector)


def parse_name(name: str) -> tuple[int | None, int | None, int] | None:
    """``(visit, detector, alert id)`` of a packet name (visit, detector None for ``<id>.alert``);
    None for a name outside the spool's pattern."""
    match = _NAME.match(name)
    if match is None:
        return None
    visit, detector, alert_id = match.groups()
    return (
        int(visit) if visit else None,
        int(detector) if detector else None,
        int(alert_id),
    )


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
    """The packet ``name``, or None if it has gone (discarded by a failed detector).

    Four system calls on one descriptor: ``fstat`` for the size and rename time, one
    ``read`` of the whole file (a finished packet no longer changes), the checksum
    attribute, ``close``.
    """
    parsed = parse_name(name)
    try:
        fd = os.open(os.path.join(directory, name), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        stat = os.fstat(fd)
        payload = os.read(fd, stat.st_size + 1)  # + 1: a file grown since shows as longer
        while len(payload) < stat.st_size and (more := os.read(fd, stat.st_size - len(payload))):
            payload += more  # a short read (a network file system)
        checksum = _checksum(fd)
    finally:
        os.close(fd)
    visit, detector, name_id = parsed if parsed is not None else (None, None, None)
    return Packet(name, payload, visit, detector, name_id, stat.st_ctime, checksum)


def _checksum(fd: int) -> int | None:
    """The writer's CRC-32 of the open packet ``fd``, or None if it recorded none."""
    try:
        value = os.getxattr(fd, alert_spool.CHECKSUM_XATTR)
    except OSError:  # none recorded (ENODATA), or no user attributes here: decode instead
        return None
    if len(value) != _CRC.size:
        return None  # not ours: decode the body instead
    return int(_CRC.unpack(value)[0])


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
