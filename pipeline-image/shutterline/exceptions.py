"""The exception taxonomy, mapped to process exit codes.

Retriable errors are transient (a broker or S3 hiccup): the Job may run the pod again.
Permanent errors are about the data (a corrupt raw, a missing calibration): running again
cannot help, so the Job's ``podFailurePolicy`` fails the index at once on their exit code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "EXIT_NO_RAW",
    "EXIT_PERMANENT",
    "EXIT_RELAY_UNAVAILABLE",
    "EXIT_RETRIABLE",
    "CorruptInputError",
    "MalformedRawError",
    "MissingInputError",
    "PermanentError",
    "RawTimeoutError",
    "RelayUnavailableError",
    "RetriableError",
    "ShutterlineError",
]

# The exit-code contract of every worker container; the operator's podFailurePolicy reads it
# (docs/architecture.md, "The worker pod"): 65 and 66 fail the Job index at once, 69 and 75
# are retried up to the index's backoff limit.
EXIT_RETRIABLE = 75  # EX_TEMPFAIL: a service hiccup; run the pod again
EXIT_PERMANENT = 65  # EX_DATAERR: the data or configuration is wrong; never retry
EXIT_NO_RAW = 66  # EX_NOINPUT: the raw never landed in the backbone within the wait
EXIT_RELAY_UNAVAILABLE = 69  # EX_UNAVAILABLE: the broker stayed unreachable; spool kept


class ShutterlineError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = EXIT_PERMANENT


class RetriableError(ShutterlineError):
    """A transient failure: the same work may succeed when tried again."""

    exit_code = EXIT_RETRIABLE


class PermanentError(ShutterlineError):
    """A failure of the data or configuration: trying again cannot help."""

    exit_code = EXIT_PERMANENT


def _format_data_id(data_id: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {data_id[k]!r}" for k in sorted(data_id)) + "}"


class MissingInputError(PermanentError):
    """A dataset a stage needs is not in the repository."""

    def __init__(self, dataset_type: str, data_id: Mapping[str, Any], detail: str = "") -> None:
        self.dataset_type = dataset_type
        self.data_id = dict(data_id)
        msg = f"missing input: no {dataset_type!r} dataset for {_format_data_id(data_id)}"
        super().__init__(msg + (f" ({detail})" if detail else ""))


class CorruptInputError(PermanentError):
    """A dataset exists but its bytes are damaged (checksum mismatch, truncated file)."""

    def __init__(self, what: str, detail: str) -> None:
        self.what = what
        super().__init__(f"corrupt input: {what}: {detail}")


class MalformedRawError(PermanentError):
    """A raw file lacks a required header keyword, or the keyword's value is unusable."""

    def __init__(self, path: str, keyword: str, detail: str = "") -> None:
        self.path = path
        self.keyword = keyword
        msg = f"malformed raw {path}: keyword {keyword!r}"
        super().__init__(msg + (f" {detail}" if detail else " is missing"))


class RawTimeoutError(PermanentError):
    """The raw of a pre-staged detector did not land in the backbone within the wait."""

    exit_code = EXIT_NO_RAW


class RelayUnavailableError(ShutterlineError):
    """The alert relay gave up on an unreachable broker; the spool is left as it was."""

    exit_code = EXIT_RELAY_UNAVAILABLE
