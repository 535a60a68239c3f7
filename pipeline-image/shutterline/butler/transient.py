"""Which failures are a service's hiccup (retry the pod) and which are the data's (do not).

Network and service errors come from several libraries (botocore and urllib3 under
lsst-resources and boto3, the standard library's HTTP client under the pre-cache's streamed
copies, SQLAlchemy and psycopg2 under the registry and the APDB), often wrapped in another
exception. `is_transient` looks along the chain of causes; `retriable` turns such a failure
into `shutterline.exceptions.RetriableError` (exit 75) with a reason naming what was being
done, and leaves every other exception alone.
"""

from __future__ import annotations

import contextlib
import http.client
from collections.abc import Iterator

from shutterline import exceptions

__all__ = ["exit_code", "is_transient", "retriable"]

#: S3 error codes that mean "try again later".
_S3_RETRY_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "XMinioServerNotInitialized",
    }
)


def _transient_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [
        ConnectionError,  # refused, reset, aborted, broken pipe
        TimeoutError,
        http.client.IncompleteRead,
        http.client.RemoteDisconnected,
    ]
    with contextlib.suppress(ImportError):
        import botocore.exceptions as boto

        found += [boto.ConnectionError, boto.HTTPClientError]
    with contextlib.suppress(ImportError):
        import urllib3.exceptions as u3

        found += [u3.ProtocolError, u3.TimeoutError, u3.NewConnectionError, u3.MaxRetryError]
    with contextlib.suppress(ImportError):
        import sqlalchemy.exc as sa

        found += [sa.OperationalError, sa.DisconnectionError, sa.TimeoutError]
    with contextlib.suppress(ImportError):
        import psycopg2

        found += [psycopg2.OperationalError]
    return tuple(found)


def _s3_retry_code(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in _S3_RETRY_CODES or status >= 500


def is_transient(exc: BaseException) -> bool:
    """True if ``exc``, or an exception it was raised from, is a network or service error.

    Our own errors keep their class: a `PermanentError` is never transient, a
    `RetriableError` always is.
    """
    kinds = _transient_types()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, exceptions.ShutterlineError):
            return isinstance(current, exceptions.RetriableError)
        if isinstance(current, kinds) or _s3_retry_code(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def exit_code(exc: BaseException) -> int:
    """The pod's exit code for ``exc``: its own for ours, 75 for a transient one, else 65."""
    if isinstance(exc, exceptions.ShutterlineError):
        return exc.exit_code
    return exceptions.EXIT_RETRIABLE if is_transient(exc) else exceptions.EXIT_PERMANENT


@contextlib.contextmanager
def retriable(what: str) -> Iterator[None]:
    """Raise `RetriableError` naming ``what`` for a transient failure of the body."""
    try:
        yield
    except exceptions.ShutterlineError:
        raise
    except Exception as exc:
        if not is_transient(exc):
            raise
        raise exceptions.RetriableError(f"{what}: {type(exc).__name__}: {exc}") from exc
