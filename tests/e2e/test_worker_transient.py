"""Service failures in the pod's pre-cache and raw paths are retriable (75), not permanent.

A MinIO server of this module's own (so stopping it disturbs no other test) holds a small
central repository with a PostgreSQL registry; it is stopped in the middle of a pre-cache
and while a pod waits for its raw, then started again on the same port and data.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shutterline import exceptions
from shutterline.butler import arrival, fetch, precache, repo
from shutterline.pipeline import pod, settings, task
from tests.testbed import procs, s3
from tests.unit.butler.conftest import DEC, RA, VISIT_MJD, Central, populate

pytestmark = [pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3.S3Server]:
    server = s3.start(tmp_path_factory.mktemp("own-s3"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in server.env().items():
            patch.setenv(key, value)
        yield server
    server.stop()


@dataclasses.dataclass
class Flaky:
    """A small central repository in the module's own S3 server."""

    central: Central
    uri: str


@pytest.fixture(scope="module")
def flaky(
    own_s3: s3.S3Server, postgres_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Flaky:
    uri = f"s3://{own_s3.make_bucket('flaky')}/repo"
    butler = repo.create_repo(uri, registry_url=postgres_server.create_database("flaky"))
    return Flaky(populate(butler, tmp_path_factory.mktemp("flaky")), uri)


def _restarted(server: s3.S3Server) -> None:
    server.process.start()
    deadline = time.monotonic() + 30.0
    while True:
        try:
            if s3._healthy(server.endpoint_url):
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "MinIO did not come back"
        time.sleep(0.2)


def _task(flaky: Flaky) -> tuple[settings.Settings, task.DetectorTask]:
    spec = task.VisitSpec(
        instrument="SimDECam",
        visit_id=1001,
        band="r",
        physical_filter="r",
        boresight=task.Boresight(RA, DEC, 0.0),
        observation_start=_utc(VISIT_MJD + 0.01),
        exposure_time=30.0,
        raw_uri="s3://nowhere/{visit}_{detector}.fits",
    )
    work = flaky.central.root / f"pod-{time.monotonic_ns()}"
    cfg = settings.Settings(
        repo=flaky.uri,
        apdb=str(work / "apdb.sqlite3"),
        spool=work / "spool",
        workdir=work / "work",
    )
    return cfg, task.DetectorTask(spec, 1, 0)


def _utc(mjd_tai: float) -> Any:
    import datetime

    from astropy.time import Time

    return Time(mjd_tai, format="mjd", scale="tai").utc.to_datetime(timezone=datetime.UTC)


def test_s3_stopped_mid_precache_is_retriable_and_the_retry_succeeds(
    own_s3: s3.S3Server, flaky: Flaky, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, job = _task(flaky)
    copy_one = fetch._copy_one
    calls = []

    def stop_on_second_copy(job_: fetch.FileJob, root: Path) -> Any:
        calls.append(job_)
        if len(calls) == 2:
            own_s3.stop()  # failure injection: the backbone goes away between two files
        return copy_one(job_, root)

    monkeypatch.setattr(fetch, "_copy_one", stop_on_second_copy)
    try:
        with pytest.raises(exceptions.RetriableError) as info:
            pod.precache_task(cfg, job, env={})
    finally:
        monkeypatch.setattr(fetch, "_copy_one", copy_one)
        _restarted(own_s3)
    assert info.value.exit_code == exceptions.EXIT_RETRIABLE
    assert "pre-staging visit 1001 detector 1" in str(info.value)
    local = cfg.workdir / "local-1001-1"
    assert not local.exists() and not list(cfg.workdir.glob("local-1001-1*"))
    # The Job runs the pod again: now the pre-cache goes through.
    report = pod.precache_task(cfg, job, env={})
    assert report is not None and report.n_unverified == 0
    assert (local / precache.PRESTAGED_FILE).is_file()


def test_s3_down_while_waiting_for_the_raw(own_s3: s3.S3Server) -> None:
    bucket = own_s3.make_bucket("incoming")
    uri = f"s3://{bucket}/raw_1.fits"
    own_s3.stop()
    try:
        with pytest.raises(exceptions.RetriableError, match="backbone unreachable"):
            arrival.wait_for_raw(uri, timeout_s=1.0)
        # An outage that ends before the wait does: the wait goes on and sees the raw.
        seen: list[float] = []
        waiter = threading.Thread(target=lambda: seen.append(arrival.wait_for_raw(uri, 60.0)))
        waiter.start()
        time.sleep(1.0)
    finally:
        _restarted(own_s3)
    put_at = time.time()
    own_s3.client().put_object(Bucket=bucket, Key="raw_1.fits", Body=b"SIMPLE")
    waiter.join(timeout=60.0)
    assert seen and seen[0] >= put_at - 0.01
    with pytest.raises(exceptions.RawTimeoutError, match=r"did not land within 0\.3 s"):
        arrival.wait_for_raw(f"s3://{bucket}/never.fits", timeout_s=0.3)


def test_unreachable_apdb_while_loading_is_retriable(flaky: Flaky, tmp_path: Path) -> None:
    cfg, job = _task(flaky)
    assert pod.precache_task(cfg, job, env={}) is not None
    dead = dataclasses.replace(
        cfg, apdb=f"postgresql+psycopg2://nobody@127.0.0.1:{procs.free_port()}/a"
    )
    message = tmp_path / "termination-log"
    code = pod.run_task(dead, job, env={"TESTBED_TERMINATION_MESSAGE_PATH": str(message)})
    assert code == exceptions.EXIT_RETRIABLE
    reason = json.loads(message.read_text())["reason"]
    assert "APDB" in reason and "RetriableError" in reason, reason
    assert json.loads((cfg.spool / "1001_1.done").read_text())["status"] == "failed"
