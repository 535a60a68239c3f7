"""Pre-cache: copy exactly what one detector needs from the central repository to local disk.

The local repository is built under a temporary name beside ``local_root`` and renamed into
place only after every file's checksum matched, so a failed or interrupted pre-cache never
leaves a repository that looks complete.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from lsst.daf.butler import Butler
from lsst.resources.file import FileResourcePath

from shutterline import exceptions
from shutterline.butler import fetch, footprint, names, planfile, repo, selection, verify

__all__ = [
    "PRESTAGED_FILE",
    "PrecacheReport",
    "precache_announced",
    "precache_detector",
    "read_prestaged",
]

#: In a pre-staged repository: the announcement and predicted footprint it was made for.
PRESTAGED_FILE = "prestaged.json"

_LOG = logging.getLogger(__name__)
_CHUNK_LOCK = threading.Lock()


@dataclass(frozen=True)
class PrecacheReport:
    """What a pre-cache did and how long each part took (seconds, wall clock).

    ``query_seconds``: registry queries on the central repository (the plan and the file
    records). ``setup_seconds``: creating the local repository. ``transfer_seconds``: copying
    the files, first start to last end (with ``method="stream"`` checksums are verified on
    the way, and the local repository is created and filled while the copies run, so the
    parts overlap and do not add up to the wall time). ``register_seconds``: local registry
    inserts. ``verify_seconds``: a separate checksum pass (``method="transfer_from"``
    only). ``wall_seconds``: the whole call. ``plan``: what was copied; its refs are the
    local repository's too (same dataset ids), so a caller in the same process can read the
    inputs without planning again (`shutterline.butler.inputs.read_inputs`).
    """

    local_root: str
    visit: int
    detector: int
    n_datasets: int
    bytes: int
    query_seconds: float
    setup_seconds: float
    transfer_seconds: float
    register_seconds: float
    verify_seconds: float
    wall_seconds: float
    n_unverified: int
    plan: selection.DetectorPlan | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def total_seconds(self) -> float:
        """Whole pre-cache (wall clock)."""
        return self.wall_seconds

    @property
    def transfer_mb_per_s(self) -> float:
        """Transfer throughput in MB/s (1e6 bytes)."""
        return self.bytes / 1e6 / max(self.transfer_seconds, 1e-9)


@contextlib.contextmanager
def _one_file_per_worker() -> Iterator[None]:
    # lsst-resources batches local-target transfers 25 files per worker, which runs a
    # detector's dozen large files one after another; one file per worker spreads them
    # over the transfer pool. The attribute is class-wide, hence the lock and the restore.
    with _CHUNK_LOCK:
        saved = FileResourcePath._transfer_chunk_size
        FileResourcePath._transfer_chunk_size = 1
    try:
        yield
    finally:
        with _CHUNK_LOCK:
            FileResourcePath._transfer_chunk_size = saved


def _insert_visit_records(local: Butler, plan: selection.DetectorPlan) -> None:
    if plan.visit_data_id is None:  # planned from an announcement: the raw brings them
        return
    records = plan.visit_data_id.records
    for element in ("visit", "visit_detector_region"):
        record = records[element]
        if record is not None:
            local.registry.insertDimensionData(element, record, skip_existing=True)
    local.registry.insertDimensionData(
        "visit_definition",
        {"instrument": names.INSTRUMENT, "exposure": plan.visit, "visit": plan.visit},
        skip_existing=True,
    )


def _certify_locally(local: Butler, plan: selection.DetectorPlan) -> None:
    for match in (plan.bias, plan.flat):
        local.registry.certify(names.CALIB_COLLECTION, [match.ref], match.timespan)


def _staging_path(local_root: str) -> Path:
    """A fresh sibling of ``local_root`` to build in; leftovers of killed attempts go."""
    final = Path(local_root)
    if final.exists() and any(final.iterdir()):
        raise FileExistsError(f"pre-cache target {final} exists and is not empty")
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in final.parent.glob(f"{final.name}_partial_*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return final.with_name(f"{final.name}_partial_{os.getpid()}_{threading.get_ident()}")


def _install(staging: Path, final: Path) -> None:
    """Move the finished repository into place: only now does ``final`` exist and look done."""
    if final.exists():
        final.rmdir()
    staging.rename(final)


@dataclass
class _Times:
    setup: float = 0.0
    transfer: float = 0.0
    register: float = 0.0
    verify: float = 0.0


def _fill_stream(
    central: Butler,
    staging: Path,
    plan: selection.DetectorPlan,
    jobs: list[fetch.FileJob],
    threads: int,
) -> tuple[_Times, fetch.FetchResult]:
    # The local registry is filled while the copies run (against placeholder files), so
    # once the last byte is verified only the rename is left.
    times = _Times()
    t0 = time.perf_counter()
    # Created before the copies start: opening a Butler is interpreter-bound work that
    # would otherwise compete with the copy threads for the GIL.
    local = repo.create_repo(str(staging))
    t1 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        pending = fetch.start_copies(jobs, staging, pool)
        try:
            fetch.make_placeholders(jobs, staging)
            # One transaction: one SQLite commit (an fsync) for the whole registry, not ~35.
            # daf_butler registers runs outside transactions for concurrent writers; this
            # repository has one writer, and a failure discards it whole.
            with local.transaction():
                fetch.prepare_target(local, central, plan.refs)
                _insert_visit_records(local, plan)
                fetch.register_copies(local, jobs)
                _certify_locally(local, plan)
            local.close()
            t2 = time.perf_counter()
            result = fetch.wait_copies(pending)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    times.setup, times.register = t1 - t0, t2 - t1
    times.transfer = result.seconds  # overlaps setup and registration
    return times, result


def _fill_transfer_from(
    central: Butler,
    staging: Path,
    plan: selection.DetectorPlan,
    jobs: list[fetch.FileJob],
    threads: int,
) -> tuple[_Times, fetch.FetchResult]:
    times = _Times()
    t0 = time.perf_counter()
    local = repo.create_repo(str(staging))
    t1 = time.perf_counter()
    with _one_file_per_worker():
        local.transfer_from(central, plan.refs, transfer="copy", transfer_dimensions=True)
    t2 = time.perf_counter()
    _insert_visit_records(local, plan)
    _certify_locally(local, plan)
    t3 = time.perf_counter()
    checked = verify.verify_local_files(local, plan.refs, threads=threads)
    local.close()
    t4 = time.perf_counter()
    times.setup, times.transfer, times.register, times.verify = t1 - t0, t2 - t1, t3 - t2, t4 - t3
    return times, fetch.FetchResult(checked.n_files, checked.n_bytes, checked.n_unverified)


def precache_detector(
    central: Butler | str,
    local_root: str,
    visit: int,
    detector: int,
    padding_arcsec: float = 60.0,
    threads: int = 8,
    method: str = "stream",
) -> PrecacheReport:
    """Create a local POSIX repository holding exactly one detector's inputs, raw included.

    Parameters
    ----------
    central : Butler or str
        The central repository, or its URI.
    local_root : str
        Directory of the new repository; must not exist or be empty.
    visit, detector : int
        What to pre-cache for (its raw ingested in ``central``).
    padding_arcsec : float
        Templates and reference shards are chosen for the footprint grown by this much.
    threads : int
        Files copied (and checksummed) in parallel.
    method : str
        ``"stream"`` (default): parallel copy verifying checksums on the way, then register
        (`shutterline.butler.fetch`). ``"transfer_from"``: ``Butler.transfer_from`` then a
        second pass to verify checksums; slower, kept for comparison.

    Raises
    ------
    shutterline.exceptions.MissingInputError
        An input does not exist in the central repository.
    shutterline.exceptions.CorruptInputError
        A transferred file does not match its recorded checksum (names the dataset).
    """
    if method not in ("stream", "transfer_from"):
        raise ValueError(f"unknown pre-cache method {method!r}")
    t0 = time.perf_counter()
    central = repo.open_repo(central) if isinstance(central, str) else central
    plan = selection.plan_detector(central, visit, detector, padding_arcsec)
    return _precache_plan(central, local_root, plan, _Run(threads, method, t0), {})


def precache_announced(
    central: Butler | str,
    local_root: str,
    announced: selection.Announcement,
    padding_arcsec: float = 60.0,
    threads: int = 8,
) -> PrecacheReport:
    """Pre-stage a detector from its visit's announcement, before its raw exists.

    The footprint is predicted from the boresight and rotation (`shutterline.butler.
    footprint`) and grown by the padding plus `footprint.WCS_MARGIN_ARCSEC`; calibrations,
    templates, reference shards and orbits are copied as `precache_detector` copies them.
    The prediction is kept in the local repository (`read_prestaged`) so the pipeline plans
    the same inputs from it there.

    Raises
    ------
    shutterline.exceptions.MissingInputError, shutterline.exceptions.CorruptInputError
        As `precache_detector`.
    """
    t0 = time.perf_counter()
    central = repo.open_repo(central) if isinstance(central, str) else central
    corners = footprint.predict_corners(
        central, announced.detector, announced.ra, announced.dec, announced.rotation
    )
    padding = padding_arcsec + footprint.WCS_MARGIN_ARCSEC
    plan = selection.plan_announced(central, announced, corners, padding)
    record = {"announced": dataclasses.asdict(announced), "corners": corners.tolist()}
    record["padding_arcsec"] = padding
    extra = {PRESTAGED_FILE: json.dumps(record, indent=1)}
    return _precache_plan(central, local_root, plan, _Run(threads, "stream", t0), extra)


def read_prestaged(local_root: str | Path) -> tuple[selection.Announcement, np.ndarray, float]:
    """``(announcement, predicted corners, padding)`` a pre-staged repository was made for.

    Raises
    ------
    shutterline.exceptions.MissingInputError
        ``local_root`` was not made by `precache_announced` (or not finished).
    """
    path = Path(local_root) / PRESTAGED_FILE
    if not path.is_file():
        raise exceptions.MissingInputError(
            "pre-staged repository", {"path": str(local_root)}, "did the precache step run?"
        )
    record = json.loads(path.read_text())
    announced = selection.Announcement(**record["announced"])
    return announced, np.asarray(record["corners"], float), float(record["padding_arcsec"])


@dataclass(frozen=True)
class _Run:
    threads: int
    method: str
    t0: float


def _precache_plan(
    central: Butler,
    local_root: str,
    plan: selection.DetectorPlan,
    run: _Run,
    extra: dict[str, str],
) -> PrecacheReport:
    """Copy ``plan`` into a new repository at ``local_root``, with ``extra`` files beside,
    and the plan itself (`shutterline.butler.planfile`: the pipeline reads it, not plans)."""
    extra = {**extra, planfile.PLAN_FILE: planfile.dumps(plan)}
    jobs = fetch.file_jobs(central, plan.refs) if run.method == "stream" else []
    query_seconds = time.perf_counter() - run.t0
    staging = _staging_path(local_root)
    try:
        fill = _fill_stream if run.method == "stream" else _fill_transfer_from
        times, result = fill(central, staging, plan, jobs, run.threads)
        for name, text in extra.items():
            (staging / name).write_text(text)
        _install(staging, Path(local_root))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report = PrecacheReport(
        local_root=str(Path(local_root)),
        visit=plan.visit,
        detector=plan.detector,
        n_datasets=len(plan.refs),
        bytes=result.n_bytes,
        query_seconds=query_seconds,
        setup_seconds=times.setup,
        transfer_seconds=times.transfer,
        register_seconds=times.register,
        verify_seconds=times.verify,
        wall_seconds=time.perf_counter() - run.t0,
        n_unverified=result.n_unverified,
        plan=plan,
    )
    _LOG.info("pre-cached %s", report)
    return report
