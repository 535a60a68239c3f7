"""Parallel, checksum-verifying copy of datasets' files from one repository into another.

``Butler.transfer_from`` copies a detector's dozen files in one lsst-resources batch (one
worker, one stream at a time) and leaves verification to a second pass over the bytes. Here
each file is one task of a thread pool: the bytes stream from the source (one S3 GET, or a
local read) into the target file while the checksum the source datastore recorded is
recomputed on the way, so a damaged object is caught without reading anything twice. A
local source on the target's file system is read and verified the same way, then
hard-linked instead of written again. The
datasets are then registered in the target with their original ids, runs and dimension
records (``Butler.ingest`` of files already in place), which is what ``transfer_from``
would have recorded.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import os
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsst.daf.butler import Butler, DatasetRef, FileDataset
from lsst.resources import ResourcePath

from shutterline import exceptions
from shutterline.butler import checksums

__all__ = [
    "FetchResult",
    "FileJob",
    "copy_datasets",
    "describe",
    "file_jobs",
    "make_placeholders",
    "prepare_target",
    "register_copies",
    "same_file_system",
    "start_copies",
    "wait_copies",
]

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class FileJob:
    """One file to copy: where from, where to (relative to the target datastore root), and
    what the source recorded about it (size in bytes, -1 if unknown; checksum or None)."""

    ref: DatasetRef
    source: ResourcePath
    path_in_store: str
    formatter: str
    size: int
    checksum: str | None


@dataclass(frozen=True)
class FetchResult:
    """Totals of a copy: files, bytes, files that had no checksum to verify, and the
    seconds from the first file's start to the last file's end (0 when not measured)."""

    n_files: int
    n_bytes: int
    n_unverified: int
    seconds: float = 0.0


@dataclass(frozen=True)
class _Copied:
    n_bytes: int
    checked: bool
    start: float
    end: float


def describe(ref: DatasetRef) -> str:
    """``type {key=value, ...} (run, id)``: how errors name a dataset."""
    data_id = ", ".join(f"{k}={v}" for k, v in ref.dataId.required.items())
    return f"{ref.datasetType.name} {{{data_id}}} (run {ref.run}, id {ref.id})"


def file_jobs(source: Butler, refs: list[DatasetRef]) -> list[FileJob]:
    """The files behind ``refs`` in ``source`` (one datastore query for all of them).

    Raises
    ------
    shutterline.exceptions.MissingInputError
        A dataset is registered but its datastore has no file for it.
    """
    # The same lookup transfer_from makes: the file datastore's records by dataset id.
    records = source._file_transfer_source.get_file_info_for_transfer([r.id for r in refs])
    jobs = []
    for ref in refs:
        if not records.get(ref.id):
            raise exceptions.MissingInputError(
                ref.datasetType.name, dict(ref.dataId.required), "registered but no file stored"
            )
        for record in records[ref.id]:
            info = record.file_info
            path = info.path
            if os.path.isabs(path) or "://" in path:  # ingested in place ("direct")
                path = f"external/{ref.datasetType.name}/{ref.id}/{os.path.basename(path)}"
            jobs.append(
                FileJob(
                    ref, record.location.uri, path, info.formatter, info.file_size, info.checksum
                )
            )
    return jobs


class _HttpSource:
    """A plain HTTP(S) GET of a presigned S3 URL, read straight into our buffer.

    botocore's response stream allocates and copies every chunk in Python; the standard
    library's ``HTTPResponse.readinto`` fills a caller's buffer from the socket in C with the
    GIL released, which leaves the interpreter free for the checksum and the registry work.
    """

    def __init__(self, uri: ResourcePath) -> None:
        client: Any = uri.client  # type: ignore[attr-defined]
        url = urllib.parse.urlsplit(
            client.generate_presigned_url(
                "get_object",
                Params={"Bucket": uri.netloc, "Key": uri.relativeToPathRoot},
                ExpiresIn=3600,
            )
        )
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self._conn = kind(url.netloc, timeout=120)
        self._conn.request("GET", f"{url.path}?{url.query}")
        self._response = self._conn.getresponse()
        if self._response.status == 404:
            raise FileNotFoundError(f"no such object: {uri}")
        if self._response.status != 200:
            detail = f"GET {uri}: HTTP {self._response.status} {self._response.reason}"
            error = exceptions.RetriableError if self._response.status >= 500 else OSError
            raise error(detail)

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` as far as the body allows; 0 at the end."""
        return self._response.readinto(buffer)

    def close(self) -> None:
        """Close the connection."""
        self._response.close()
        self._conn.close()


@contextlib.contextmanager
def _open_source(uri: ResourcePath) -> Iterator[Any]:
    if uri.scheme == "s3":
        source = _HttpSource(uri)
        try:
            yield source
        finally:
            source.close()
    elif uri.isLocal:
        with open(uri.ospath, "rb", buffering=0) as stream:
            yield stream
    else:
        with uri.open("rb") as stream:
            yield _ReadIntoAdapter(stream)


class _ReadIntoAdapter:
    """``readinto`` for streams that only offer ``read`` (other URI schemes)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def readinto(self, buffer: memoryview) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _copy_one(job: FileJob, root: Path) -> _Copied:
    start = time.perf_counter()
    target = root / job.path_in_store
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    summer = checksums.Checksummer(job.checksum) if job.checksum else None
    link = same_file_system(job.source, root)
    # Never write through an old name: it could be a link to the source's bytes.
    partial.unlink(missing_ok=True)
    view = memoryview(bytearray(_CHUNK))
    n_bytes = 0
    with _open_source(job.source) as stream, contextlib.ExitStack() as stack:
        out = None if link else stack.enter_context(open(partial, "wb", buffering=0))
        while got := stream.readinto(view):
            piece = view[:got]
            if out is not None:
                out.write(piece)
            if summer is not None:
                summer.update(piece)  # releases the GIL: threads checksum side by side
            n_bytes += got
    _check(job, n_bytes, summer)
    if link:  # verified as read; the same bytes under a second name, none written again
        os.link(job.source.ospath, partial)
    # Replaces the placeholder the registry was shown while the copy ran.
    os.replace(partial, target)
    return _Copied(n_bytes, summer is not None, start, time.perf_counter())


def same_file_system(source: ResourcePath, root: Path) -> bool:
    """Whether ``source`` is local and on ``root``'s file system, so it can be hard-linked
    there instead of copied (the embedded demo: 400 MB a detector not written twice).
    Datastore files are never changed in place, and removing a repository removes only its
    names."""
    if not source.isLocal:
        return False
    try:
        return os.stat(source.ospath).st_dev == os.stat(root).st_dev
    except OSError:
        return False


def _check(job: FileJob, n_bytes: int, summer: checksums.Checksummer | None) -> None:
    if job.size >= 0 and n_bytes != job.size:
        raise exceptions.CorruptInputError(
            describe(job.ref), f"{n_bytes} bytes where the repository recorded {job.size}"
        )
    if summer is not None and summer.value() != job.checksum:
        raise exceptions.CorruptInputError(
            describe(job.ref),
            f"checksum {summer.value()[:24]} does not match the recorded "
            f"{str(job.checksum)[:24]}: the file in the source repository ({job.source}) "
            "is damaged",
        )


def start_copies(
    jobs: list[FileJob], root: Path, pool: concurrent.futures.Executor
) -> list[concurrent.futures.Future[_Copied]]:
    """Submit every copy to ``pool``, largest file first so no big file starts last."""
    return [pool.submit(_copy_one, job, root) for job in sorted(jobs, key=lambda j: -j.size)]


def wait_copies(pending: list[concurrent.futures.Future[_Copied]]) -> FetchResult:
    """Wait for the copies; the first failure cancels the rest and is raised."""
    try:
        results = [future.result() for future in pending]
    except BaseException:
        for future in pending:
            future.cancel()
        raise
    return FetchResult(
        n_files=len(results),
        n_bytes=sum(r.n_bytes for r in results),
        n_unverified=sum(1 for r in results if not r.checked),
        seconds=max((r.end for r in results), default=0.0)
        - min((r.start for r in results), default=0.0),
    )


def prepare_target(target: Butler, source: Butler, refs: list[DatasetRef]) -> None:
    """Dimension records and RUN collections the datasets need (before `register_copies`)."""
    target.transfer_dimension_records_from(source, refs)
    for run in sorted({ref.run for ref in refs}):
        target.registry.registerRun(run)


def make_placeholders(jobs: list[FileJob], root: Path) -> None:
    """Empty files where copies will land, so the registry can be filled before they finish.

    ``Butler.ingest`` checks that each file exists; a copy replaces its placeholder
    atomically when its bytes are verified.
    """
    for job in jobs:
        target = root / job.path_in_store
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)


def register_copies(target: Butler, jobs: list[FileJob]) -> None:
    """Register copied files in ``target`` with their original ids (after `prepare_target`)."""
    datasets = [
        FileDataset(path=j.path_in_store, refs=[j.ref], formatter=j.formatter) for j in jobs
    ]
    # Files are in place and verified: no transfer, no second checksum pass.
    target.ingest(*datasets, transfer=None, record_validation_info=False)


def copy_datasets(
    target: Butler, source: Butler, refs: list[DatasetRef], threads: int = 8
) -> FetchResult:
    """Copy ``refs`` (expanded, from ``source``) into the local ``target`` repository.

    Raises
    ------
    shutterline.exceptions.CorruptInputError
        A file's size or checksum differs from the source's record (names the dataset).
    """
    jobs = file_jobs(source, refs)
    root = Path(target._datastore.root.ospath)  # type: ignore[attr-defined]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        pending = start_copies(jobs, root, pool)
        prepare_target(target, source, refs)
        result = wait_copies(pending)
    register_copies(target, jobs)
    return result
