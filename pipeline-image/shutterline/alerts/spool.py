"""The alert spool: one file per alert, written atomically, which the alert relay drains.

Contract with the relay (``*.alert`` is the only pattern it may pick up):

* a finished packet is ``<directory>/<visit>_<detector>_<alert id>.alert`` (or
  ``<alert id>.alert`` when the writer was not told the visit and detector), holding the
  Confluent wire-format bytes of one alert;
* while being written it lives under a hidden temporary name, ``.<final name>.<random>.tmp``,
  which no ``*.alert`` glob matches; it is fsynced, then renamed (atomic on POSIX), then the
  directory is fsynced, so a packet is either absent or complete, never partial;
* ids are deterministic (the DIA source id), so writing the same id again, as a retried
  detector does, atomically replaces the packet instead of adding a second one;
* each packet carries the CRC-32 (`zlib.crc32`) of its bytes in the extended attribute
  ``user.shutterline.crc32`` (4 bytes, big-endian), set on the temporary file before the
  rename, so the attribute and the bytes appear together. The bytes come from the alert
  serializer, which validated the record against the schema; a packet whose bytes still
  have that checksum needs no second Avro decode in the relay. On a file system without
  user extended attributes the packet is written without one (the relay then decodes it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import struct
import zlib
from concurrent import futures
from pathlib import Path

__all__ = ["CHECKSUM_XATTR", "SUFFIX", "AlertSpool", "alert_filename", "checksum_value"]

SUFFIX = ".alert"

#: Extended attribute holding a packet's CRC-32 (4 bytes, big-endian).
CHECKSUM_XATTR = "user.shutterline.crc32"
_CRC = struct.Struct(">I")
#: Errors of a file system that keeps no user extended attributes.
_NO_XATTR = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}


def checksum_value(payload: bytes) -> bytes:
    """The ``CHECKSUM_XATTR`` value of a packet holding ``payload``."""
    return _CRC.pack(zlib.crc32(payload))


def alert_filename(alert_id: int, visit: int | None = None, detector: int | None = None) -> str:
    """The spool file name of one alert."""
    if visit is None or detector is None:
        return f"{int(alert_id)}{SUFFIX}"
    return f"{int(visit)}_{int(detector)}_{int(alert_id)}{SUFFIX}"


#: Concurrent fsyncs in `AlertSpool.write_many` (they wait on the disk, not the CPU).
_FSYNC_THREADS = 8


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AlertSpool:
    """Atomic writer for a spool directory.

    Parameters
    ----------
    directory : str or path-like
        Created if missing.
    fsync : bool
        Flush each packet and the directory to disk before returning (the default; turn off
        only for throwaway output such as benchmarks).
    """

    def __init__(self, directory: str | os.PathLike[str], fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._xattrs = True  # until the file system refuses one

    def _set_checksum(self, fd: int, payload: bytes) -> None:
        """Record ``payload``'s checksum on the open temporary file ``fd``, where possible."""
        if not self._xattrs:
            return
        try:
            os.setxattr(fd, CHECKSUM_XATTR, checksum_value(payload))
        except OSError as exc:
            if exc.errno not in _NO_XATTR:
                raise
            self._xattrs = False

    def write(
        self,
        alert_id: int,
        payload: bytes,
        *,
        visit: int | None = None,
        detector: int | None = None,
    ) -> Path:
        """Write one packet atomically; return its final path.

        Pass ``visit`` and ``detector`` so `discard` can find the packet again.
        """
        final = self.directory / alert_filename(alert_id, visit, detector)
        tmp = self.directory / f".{final.name}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(payload)
                self._set_checksum(fh.fileno(), payload)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        if self.fsync:
            _fsync_directory(self.directory)
        return final

    def write_many(
        self, packets: list[tuple[int, bytes]], *, visit: int, detector: int
    ) -> list[Path]:
        """Write several packets of one detector, each atomically; return their paths.

        Same guarantees as `write`, cheaper: the packets are written under temporary names,
        fsynced concurrently (the file system then commits them together instead of one
        journal commit each), renamed, and the directory is fsynced once.
        """
        staged: list[tuple[Path, Path]] = []
        try:
            for alert_id, payload in packets:
                final = self.directory / alert_filename(alert_id, visit, detector)
                tmp = self.directory / f".{final.name}.{secrets.token_hex(4)}.tmp"
                staged.append((tmp, final))
                with open(tmp, "wb") as fh:
                    fh.write(payload)
                    self._set_checksum(fh.fileno(), payload)
            if self.fsync and staged:
                with futures.ThreadPoolExecutor(max_workers=_FSYNC_THREADS) as pool:
                    list(pool.map(_fsync_file, [tmp for tmp, _ in staged]))
            for tmp, final in staged:
                os.replace(tmp, final)
        except BaseException:
            for tmp, _ in staged:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            raise
        if self.fsync:
            _fsync_directory(self.directory)
        return [final for _, final in staged]

    def pending(self) -> list[Path]:
        """Finished packets, in name order (what a reader's ``*.alert`` glob sees)."""
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def discard(self, *, visit: int, detector: int) -> int:
        """Remove every packet and temporary file of one detector; return how many.

        For a detector that failed after writing part of its packets.
        """
        prefix = f"{int(visit)}_{int(detector)}_"
        removed = 0
        for pattern in (f"{prefix}*{SUFFIX}", f".{prefix}*.tmp"):
            for path in self.directory.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        if removed and self.fsync:
            _fsync_directory(self.directory)
        return removed
