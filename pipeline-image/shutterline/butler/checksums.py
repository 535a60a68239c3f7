"""File checksums: a fast CRC-32 for Shutterline's own repositories, blake2b for others.

daf_butler's file datastore records ``blake2b`` digests. On this project's machines blake2b
runs at about 200-270 MB/s on one core, slower than the S3 transfer it has to verify, so the
pre-cache would spend more time hashing than copying. Shutterline's datastore
(`shutterline.butler.datastore.ShutterlineFileDatastore`) records ``crc32:<hex>`` instead:
zlib's CRC-32 runs at over 1 GB/s and, like the CRC32 checksums S3 itself keeps, detects any
accidental damage (every burst of up to 32 bits, all but 2**-32 of random corruptions). It is
not a defence against deliberate tampering, which is not what these checksums are for.
A record without the prefix is taken to be a stock blake2b digest, so repositories made by
plain daf_butler verify too.
"""

from __future__ import annotations

import hashlib
import zlib

__all__ = ["CRC32_PREFIX", "Checksummer", "file_checksum"]

CRC32_PREFIX = "crc32:"
_BLOCK = 8 * 1024 * 1024


class Checksummer:
    """Incremental checksum in the algorithm a recorded value was made with.

    ``Checksummer(recorded)`` computes what ``recorded`` claims to be (CRC-32 if it has the
    ``crc32:`` prefix, blake2b otherwise); ``Checksummer()`` computes Shutterline's CRC-32.
    """

    def __init__(self, recorded: str | None = None) -> None:
        self._crc = recorded is None or recorded.startswith(CRC32_PREFIX)
        self._value = 0
        self._blake = None if self._crc else hashlib.blake2b()

    def update(self, data: bytes | memoryview) -> None:
        """Add ``data`` (both zlib and hashlib release the GIL on large buffers)."""
        if self._blake is not None:
            self._blake.update(data)
        else:
            self._value = zlib.crc32(data, self._value)

    def value(self) -> str:
        """The checksum as it is recorded."""
        if self._blake is not None:
            return self._blake.hexdigest()
        return f"{CRC32_PREFIX}{self._value:08x}"


def file_checksum(path: str, recorded: str | None = None) -> str:
    """Checksum of a local file, in the algorithm of ``recorded`` (default CRC-32)."""
    summer = Checksummer(recorded)
    with open(path, "rb") as stream:
        while block := stream.read(_BLOCK):
            summer.update(block)
    return summer.value()
