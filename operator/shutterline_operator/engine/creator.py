"""Job creation driven by the Visit watch itself, on a small pool of its own.

Every Visit event (and the listing at start, which is how a restarted operator resumes) offers
the Visit here; one that is unfinished and has no Job gets `Reconciler.ensure` on the pool.
No kopf change handler is involved, so kopf writes nothing on a Visit (no finalizer, no
progress or diff-base annotations): the Job is the first write the operator makes for it, and
its owner reference is what cascades deletion. A transient failure is offered again after
``retry_s``; the deterministic Job name keeps a repeat from making a second Job.

`creating` (which holds the status loop's writes back) stays true for ``linger_s`` after the
last Job was made: in a burst whose Visits arrive a little slower than Jobs are made, the pool
is empty for moments between them, and the status patches, labels and Events let through then
were still in flight, ahead of the next Visit's Job POST, when it came.

With ``times`` (``SHUTTERLINE_OPERATOR_TIMES``, for benchmarks) each Job made is also written
there as a JSON line: when its Visit was offered, its step started and ended (monotonic
seconds, the same clock for every process of the machine).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

from shutterline_operator.adapters import kube, kube_async, metrics
from shutterline_operator.core import names
from shutterline_operator.core import status as vstatus
from shutterline_operator.engine import cache as vcache
from shutterline_operator.engine import reconcile

__all__ = ["AsyncCreator", "Creator"]

log = logging.getLogger("shutterline.operator")


class Creator:
    """Gives new Visits their Jobs, at most one step per Visit in flight."""

    def __init__(
        self,
        rec: reconcile.Reconciler,
        workers: int = 16,
        retry_s: float = 2.0,
        times: Path | None = None,
        linger_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rec, self.retry_s, self.times = rec, retry_s, times
        self.linger_s, self.clock = linger_s, clock
        #: When (``clock``) the pool last became empty.
        self.idle_since = float("-inf")
        self.pool = futures.ThreadPoolExecutor(workers, thread_name_prefix="create")
        self.busy: set[vcache.Key] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def offer(self, key: vcache.Key) -> None:
        """Queue ``ensure`` for Visit ``key`` if it still needs a Job and none is being made."""
        if self.stopping:
            return
        meta = (self.rec.cache.visits.get(key) or {}).get("metadata") or {}
        if meta.get("deletionTimestamp") and names.FINALIZER in (meta.get("finalizers") or ()):
            self.pool.submit(self.rec.drop_finalizer, self.rec.cache.visits[key])
        if not self.needs_job(key):
            return
        with self.lock:
            if key in self.busy:
                return
            self.busy.add(key)
        self._submit(key, time.monotonic())

    def _submit(self, key: vcache.Key, offered: float) -> None:
        self.pool.submit(self._run, key, offered)

    def creating(self) -> bool:
        """Whether some Visit is waiting for its Job (queued here or being made), or one was
        within the last ``linger_s``."""
        with self.lock:
            return bool(self.busy) or self.clock() - self.idle_since < self.linger_s

    def done(self, key: vcache.Key) -> None:
        """Visit ``key``'s step ended (with a Job or not)."""
        with self.lock:
            self.busy.discard(key)
            if not self.busy:
                self.idle_since = self.clock()

    def offer_all(self) -> None:
        """Offer every cached Visit (after the start-up listing: the resume)."""
        with self.rec.cache.lock:
            keys = list(self.rec.cache.visits)
        for key in keys:
            self.offer(key)

    def needs_job(self, key: vcache.Key) -> bool:
        """Unfinished, not being deleted, and no Job of it ever seen by this process."""
        cache = self.rec.cache
        with cache.lock:
            visit = cache.visits.get(key)
            if visit is None or visit["metadata"].get("deletionTimestamp"):
                return False
            if (visit.get("status") or {}).get("phase") in vstatus.TERMINAL:
                return False
            return not cache.had_job(visit)

    def _run(self, key: vcache.Key, offered: float) -> None:
        started = time.monotonic()
        metrics.CREATE_WAIT_SECONDS.observe(started - offered)
        retry = False
        try:
            visit = self.rec.cache.visits.get(key)
            if visit is not None and self.needs_job(key):
                self.rec.ensure(visit)
                self._noted(key, visit, offered, started)
        except Exception as error:
            retry = self._failed(key, error)
        finally:
            self.done(key)
        self._again(key, retry)

    def _noted(
        self, key: vcache.Key, visit: dict[str, Any], offered: float, started: float
    ) -> None:
        if self.times is not None and self.rec.cache.had_job(visit):
            self._note(key, offered, started)

    def _failed(self, key: vcache.Key, error: Exception) -> bool:
        """Log a step's failure; whether to offer the Visit again."""
        if isinstance(error, reconcile.Retry):
            log.info("visit %s/%s: %s; again in %.0f s", *key, error, self.retry_s)
            return True
        if isinstance(error, kube.ApiError):
            log.error("visit %s/%s: no Job: %s", *key, error)
            return False
        log.error("visit %s/%s: creating its Job failed", *key, exc_info=error)
        return True

    def _again(self, key: vcache.Key, retry: bool) -> None:
        if retry and not self.stopping:
            timer = threading.Timer(self.retry_s, self.offer, (key,))
            timer.daemon = True
            timer.start()

    def _note(self, key: vcache.Key, offered: float, started: float) -> None:
        line = {"visit": key[1], "offered": offered, "started": started, "done": time.monotonic()}
        assert self.times is not None
        with self.lock, self.times.open("a") as out:
            out.write(json.dumps(line) + "\n")

    def stop(self) -> None:
        """Take no more work; let the steps in flight finish."""
        self.stopping = True
        self.pool.shutdown(wait=True, cancel_futures=True)


class AsyncCreator(Creator):
    """`Creator` with the Job POST a coroutine of kopf's loop (`kube_async`): at most
    ``workers`` POSTs in flight, no thread per request. The Job is built in the loop (pure,
    about a millisecond); a Visit whose step needs other API calls first (a rejection, the
    env ConfigMap's first create, a Job of its name held) or whose POST met a 409 goes to
    the thread pool, to `Reconciler.ensure` as in `Creator`."""

    def __init__(
        self,
        rec: reconcile.Reconciler,
        api: kube_async.AsyncApi,
        loop: asyncio.AbstractEventLoop,
        workers: int = 16,
        **options: Any,
    ) -> None:
        super().__init__(rec, 4, **options)
        self.api, self.loop = api, loop
        self.slots = asyncio.Semaphore(workers)
        self.tasks: set[asyncio.Task[None]] = set()

    def _submit(self, key: vcache.Key, offered: float) -> None:
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:  # a thread: the start-up listing, a retry's timer
            here = False
        if here:
            self._spawn(key, offered)
        else:
            self.loop.call_soon_threadsafe(self._spawn, key, offered)

    def _spawn(self, key: vcache.Key, offered: float) -> None:
        task = self.loop.create_task(self._post(key, offered))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post(self, key: vcache.Key, offered: float) -> None:
        async with self.slots:
            started = time.monotonic()
            metrics.CREATE_WAIT_SECONDS.observe(started - offered)
            visit = self.rec.cache.visits.get(key)
            wanted = visit is not None and self.needs_job(key)
            job = self.rec.prepare(visit) if visit is not None and wanted else None
            if visit is None or job is None:
                if wanted:  # the general step, on the pool (it ends with `done`)
                    self.pool.submit(self._run, key, offered)
                else:
                    self.done(key)
                return
            retry = False
            try:
                answer = await self.api.create("jobs", job, metadata_only=self.rec.lean)
                if answer is None:  # 409: reading the Job that exists is a blocking call
                    await self.loop.run_in_executor(self.pool, self.rec.created, visit, job, None)
                else:
                    self.rec.created(visit, job, answer)
                self._noted(key, visit, offered, started)
            except Exception as error:
                transient = isinstance(error, kube.ApiError) and error.transient
                retry = self._failed(key, reconcile.Retry(str(error)) if transient else error)
            finally:
                self.done(key)
            self._again(key, retry)

    def stop(self) -> None:
        """As `Creator.stop`, and close the session (from a thread: kopf's cleanup)."""
        super().stop()
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.api.close(), self.loop)
