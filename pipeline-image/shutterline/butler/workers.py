"""Worker processes of the repository-level builders (calibrations, templates)."""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from lsst.daf.butler import Butler

from shutterline.butler import repo

__all__ = ["ordered_results", "worker_butler"]

_T = TypeVar("_T")

#: This process's read-only Butler per repository (opening one costs about 0.3 s).
_BUTLERS: dict[str, Butler] = {}


def worker_butler(repo_uri: str) -> Butler:
    """A read-only Butler on ``repo_uri``, opened once per process."""
    if repo_uri not in _BUTLERS:
        _BUTLERS[repo_uri] = repo.open_repo(repo_uri)
    return _BUTLERS[repo_uri]


def ordered_results(
    func: Callable[..., _T], items: Iterable[tuple[Any, ...]], jobs: int
) -> Iterator[_T]:
    """``func(*item)`` for every item, in their order, computed in ``jobs`` processes.

    At most ``jobs + 1`` items are handed out ahead of the caller (one queued, so no worker
    waits on it), so the items' inputs and results never pile up in memory.
    """
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: collections.deque[concurrent.futures.Future[_T]] = collections.deque()
        for item in items:
            pending.append(pool.submit(func, *item))
            if len(pending) > jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
