"""The alert spool: one file per alert, written atomically, which the alert relay drains.

Contract with the relay (``*.alert`` is the only pattern it may pick up):

* a finished packet is ``<directory>/<visit>_<detector>_<alert id>.alert`` (or
  ``<alert id>.alert`` when the writer was not told the visit and detector), holding the
  Confluent wire-format bytes of one alert;
* while being written it lives under a hidden temporary name, ``.<final name>.<random>.tmp``,
  which no ``*.alert`` glob matches; it is fsynced, then renamed (atomic on POSIX), then the
  directory is fsynced, so a packet is either absent or complete, never partial;
* ids are deterministic (the DIA source id), so writing the same id again, as a retried
  detector does, atomically replaces the packet instead of adding a second one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from concurrent import futures
from pathlib import Path

__all__ = ["SUFFIX", "AlertSpool", "alert_filename"]

SUFFIX = ".alert"


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
                tmp.write_bytes(payload)
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
