"""Checksum verification of the files of a local repository after a transfer."""

from __future__ import annotations

import concurrent.futures
import os
from dataclasses import dataclass

from lsst.daf.butler import Butler, DatasetRef

from shutterline import exceptions
from shutterline.butler import checksums, fetch

__all__ = ["VerifyResult", "verify_local_files"]


@dataclass(frozen=True)
class VerifyResult:
    """Totals of a verification: files, bytes, and files with no recorded checksum."""

    n_files: int
    n_bytes: int
    n_unverified: int


def _check_one(ref: DatasetRef, path: str, size: int, checksum: str | None) -> tuple[int, bool]:
    actual_size = os.path.getsize(path)
    if size >= 0 and actual_size != size:
        raise exceptions.CorruptInputError(
            fetch.describe(ref), f"{actual_size} bytes where the repository recorded {size}"
        )
    if checksum is None:
        return actual_size, False
    actual = checksums.file_checksum(path, checksum)
    if actual != checksum:
        raise exceptions.CorruptInputError(
            fetch.describe(ref),
            f"checksum {actual[:24]} does not match the recorded {checksum[:24]}: the copy "
            "in the source repository is damaged",
        )
    return actual_size, True


def verify_local_files(butler: Butler, refs: list[DatasetRef], threads: int = 4) -> VerifyResult:
    """Recompute every file's checksum and size and compare with the datastore records.

    Raises
    ------
    shutterline.exceptions.CorruptInputError
        A file's size or checksum differs from its record (names the dataset).
    """
    # The file datastore's records (path, size, checksum) are only reachable through the
    # datastore object; a local repository is always a DirectButler with a FileDatastore.
    datastore = butler._datastore
    jobs = []
    for ref in refs:
        for info in datastore.getStoredItemsInfo(ref):  # type: ignore[attr-defined]
            location = info.file_location(datastore.locationFactory)  # type: ignore[attr-defined]
            jobs.append((ref, location.uri.ospath, info.file_size, info.checksum))
    # hashlib releases the GIL on large reads, so threads hash files side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        results = list(pool.map(lambda job: _check_one(*job), jobs))
    return VerifyResult(
        n_files=len(jobs),
        n_bytes=sum(size for size, _ in results),
        n_unverified=sum(1 for _, checked in results if not checked),
    )
