"""A pre-staged detector's raw: waiting for it to land, fetching it, checking it is the one.

The camera writes each raw with one PUT, so the object exists only once it is whole: a
successful HEAD means the raw has landed. Polling costs one small request per interval and
needs nothing from the S3 server beyond the API every server has (bucket notifications
would need a queue the pod can reach); at 0.1 s it adds at most that much to the critical
path. S3 is asked through a client of our own with short timeouts and no retries of its
own: lsst-resources retries a failing request for a minute, which would blur both the wait's
deadline and the moment the raw is seen.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import urllib.parse
from pathlib import Path
from typing import Any

from lsst.resources import ResourcePath

from shutterline import exceptions
from shutterline.butler import rawheaders, selection, transient

__all__ = ["POLL_INTERVAL_S", "check_raw", "download_raw", "wait_for_raw"]

log = logging.getLogger(__name__)

#: Seconds between two looks at the raw URI.
POLL_INTERVAL_S = 0.1


@functools.cache
def _s3_client(endpoint: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=20,
        retries={"max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": "path"},
    )
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def _client() -> Any:
    return _s3_client(os.environ.get("S3_ENDPOINT_URL") or None)


def _exists(uri: str) -> bool:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "s3":
        return bool(ResourcePath(uri).exists())
    try:
        _client().head_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))
    except Exception as exc:
        status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            return False
        raise
    return True


def _read(uri: str) -> bytes:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "s3":
        return bytes(ResourcePath(uri).read())
    body = _client().get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"]
    return bytes(body.read())


def wait_for_raw(uri: str, timeout_s: float, interval_s: float = POLL_INTERVAL_S) -> float:
    """Wait until an object exists at ``uri``; return the unix time it was seen.

    A service error while polling is logged and polling goes on: the raw may still land.

    Raises
    ------
    shutterline.exceptions.RawTimeoutError
        Nothing landed within ``timeout_s``.
    shutterline.exceptions.RetriableError
        The wait ran out while the backbone could not be reached (the last look failed).
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            if _exists(uri):
                return time.time()
            last_error = None
        except Exception as exc:
            if not transient.is_transient(exc):
                raise
            if last_error is None:
                log.warning("raw %s: backbone unreachable, still waiting: %s", uri, exc)
            last_error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(min(interval_s, max(deadline - time.monotonic(), 0.0)))
    if last_error is not None:
        raise exceptions.RetriableError(
            f"raw {uri}: backbone unreachable for the last of {timeout_s:g} s of waiting "
            f"({type(last_error).__name__}: {last_error})"
        ) from last_error
    raise exceptions.RawTimeoutError(f"raw {uri} did not land within {timeout_s:g} s")


def download_raw(uri: str, directory: Path) -> Path:
    """Copy the raw at ``uri`` into ``directory``; the file appears whole or not at all."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / ResourcePath(uri).basename()
    partial = target.with_name(f".{target.name}.part")
    with transient.retriable(f"downloading raw {uri}"):
        data = _read(uri)
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def check_raw(path: Path, uri: str, announced: selection.Announcement) -> rawheaders.RawInfo:
    """Validate the raw's headers and that it is the announced visit, detector and filter.

    Raises
    ------
    shutterline.exceptions.MalformedRawError
        A required keyword is missing or unusable.
    shutterline.exceptions.PermanentError
        The raw is another visit's, detector's or filter's than announced.
    """
    info = rawheaders.read_raw_info(path)
    # The instrument maps a header's filter to its band by the first word (DECam's
    # 'r DECam SDSS c0002 6415.0 1480.0' is r); compare full names only where both have one.
    band = str(info.physical_filter).split()[0]
    found = {"EXPNUM": info.exposure, "CCDNUM": info.detector, "FILTER": band}
    wanted = {"EXPNUM": announced.visit, "CCDNUM": announced.detector, "FILTER": announced.band}
    if band != info.physical_filter and announced.physical_filter != announced.band:
        found["FILTER"], wanted["FILTER"] = info.physical_filter, announced.physical_filter
    wrong = [f"{k}={found[k]!r} (announced {wanted[k]!r})" for k in found if found[k] != wanted[k]]
    if not info.is_science:
        wrong.append(f"OBSTYPE={info.obstype!r} (a science exposure was announced)")
    if wrong:
        raise exceptions.PermanentError(f"raw {uri} is not the announced one: " + ", ".join(wrong))
    return info
