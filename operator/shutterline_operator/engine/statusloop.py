"""The one loop that serves every Visit: queue admission when Jobs or Visits changed (or
once a second, for deadlines), then the status of each dirty Visit, coalesced so that a
Visit whose pods change many times a second is patched at most once per interval. The
patches go to a small pool, several in flight at once (an API write takes most of a second
on a loaded server) but never two for the same Visit.

Job creation comes first: while Visits wait for their Jobs (``creating``), status patches
and Events wait too, up to ``hold_s`` in a row, so that in a burst the API server's writes
go to the Jobs (a Visit's status patch costs the server more than its Job's creation).
The loop also tends the env ConfigMaps (`envmaps.tend`: on a ConfigMap event, else every
5 s; deletions only while no Visit waits for its Job)."""

from __future__ import annotations

import collections
import datetime as dt
import functools
import logging
import threading
import time
from concurrent import futures

from shutterline_operator.adapters import kube, metrics
from shutterline_operator.engine import admission, envmaps, reconcile

__all__ = ["StatusLoop"]

log = logging.getLogger("shutterline.operator")
_ADMIT_EVERY_S = 1.0
_ADMIT_MIN_S = 0.1
#: Passes take at most this share of the time: one costs O(Jobs) of the GIL, which kopf's
#: event intake and the Job creators need most in a burst, when passes cost most.
_ADMIT_SHARE = 0.1
_TEND_EVERY_S = 5.0
_ALIVE_S = 30.0
_HELD_POLL_S = 0.05


class StatusLoop(threading.Thread):
    """Runs until `stop`; `alive` says whether it is still turning."""

    def __init__(
        self,
        rec: reconcile.Reconciler,
        interval: float = 0.5,
        workers: int = 4,
        creating: collections.abc.Callable[[], bool] = lambda: False,
        hold_s: float = 2.0,
    ) -> None:
        super().__init__(name="status-loop", daemon=True)
        self.rec, self.interval = rec, interval
        self.creating, self.hold_s = creating, hold_s
        self.held_since: float | None = None
        self.workers = workers
        self.pool = futures.ThreadPoolExecutor(workers, thread_name_prefix="status")
        self.busy: set[tuple[str, str]] = set()
        self.stopping = threading.Event()
        self.last_turn = time.monotonic()
        self.last_admit = 0.0
        self.admit_gap = _ADMIT_MIN_S
        self.last_tend = 0.0

    def stop(self) -> None:
        """End the loop after its current turn and the patches in flight."""
        self.stopping.set()
        self.rec.cache.wake.set()
        if self.is_alive():
            self.join(timeout=10)
        self.pool.shutdown(wait=True, cancel_futures=True)

    def alive(self) -> bool:
        """Whether the loop has turned within the last half minute."""
        return self.is_alive() and time.monotonic() - self.last_turn < _ALIVE_S

    def run(self) -> None:
        """Turn until stopped; one failing Visit never stops the others."""
        while not self.stopping.is_set():
            self.rec.cache.wake.wait(_ADMIT_EVERY_S / 2)
            self.last_turn = time.monotonic()
            try:
                self.turn()
            except Exception:
                log.exception("status loop turn failed")
                time.sleep(self.interval)

    def turn(self) -> None:
        """Admission if due, then every dirty Visit whose coalescing interval has passed."""
        cache = self.rec.cache
        self._admit_if_due()
        self._tend_if_due()
        if self._held():
            self.stopping.wait(_HELD_POLL_S)
            return
        with cache.lock:
            earliest = cache.earliest_dirty(self.busy)
        if earliest is None:
            return
        wait = earliest + self.interval - time.monotonic()
        if wait > 0:
            self.stopping.wait(min(wait, self.interval))
            return
        # No more than the pool can start now: a backlog queued in the pool could not be
        # held back for Job creation, and the longest-waiting Visits go first.
        free = self.workers - len(self.busy)
        if free <= 0:
            self.stopping.wait(_HELD_POLL_S)
            return
        with cache.lock:
            due = cache.take_dirty(time.monotonic() - self.interval, self.busy, free)
            self.busy.update(due)
        for key in due:
            self.pool.submit(self._flush, key)
        self._count_phases()

    def _held(self) -> bool:
        """Whether status work waits for Job creation now (at most ``hold_s`` in a row, then
        one turn goes through, so a long stream of new Visits does not starve statuses)."""
        if self.hold_s <= 0 or not self.creating():
            self.held_since = None
            return False
        now = time.monotonic()
        if self.held_since is None:
            self.held_since = now
        if now - self.held_since < self.hold_s:
            return True
        self.held_since = None
        return False

    def _flush(self, key: tuple[str, str]) -> None:
        try:
            self._guarded(functools.partial(self.rec.flush, key), key)
        finally:
            with self.rec.cache.lock:
                self.busy.discard(key)
                if key in self.rec.cache.dirty:
                    self.rec.cache.wake.set()

    def _admit_if_due(self) -> None:
        # In a burst every new Job asks for a pass: passes are spaced by what the last cost
        # (`admit_gap`), at least _ADMIT_MIN_S and at most _ADMIT_EVERY_S apart.
        now = time.monotonic()
        since = now - self.last_admit
        if (self.rec.cache.queue_dirty and since >= self.admit_gap) or since >= _ADMIT_EVERY_S:
            self.rec.cache.queue_dirty = False
            self.last_admit = now
            self._guarded(self._admit, None)
            cost = time.monotonic() - now
            self.admit_gap = min(_ADMIT_EVERY_S, max(_ADMIT_MIN_S, cost / _ADMIT_SHARE))

    def _tend_if_due(self) -> None:
        # A ConfigMap event (one deleted by hand) at once; Jobs gone (stale ConfigMaps) and
        # missed events every _TEND_EVERY_S.
        now = time.monotonic()
        if self.rec.cache.maps_dirty or now - self.last_tend >= _TEND_EVERY_S:
            self.last_tend = now
            self._guarded(lambda: envmaps.tend(self.rec, not self.creating()), None)

    def _admit(self) -> None:
        started = time.perf_counter()
        admission.admit(self.rec, dt.datetime.now(dt.UTC))
        metrics.RECONCILE_SECONDS.labels("admit").observe(metrics.since(started))

    def _guarded(
        self, step: collections.abc.Callable[[], object], key: tuple[str, str] | None
    ) -> None:
        try:
            step()
        except kube.ApiError as error:
            log.warning("%s: %s", key or "queue", error)
            if error.transient and key is not None:
                self.rec.cache.mark(key)
            elif error.transient:
                self.rec.cache.queue_dirty = True

    def _count_phases(self) -> None:
        with self.rec.cache.lock:
            phases = collections.Counter(
                (v.get("status") or {}).get("phase") or "Pending"
                for v in self.rec.cache.visits.values()
            )
        metrics.VISITS.clear()
        for phase, count in phases.items():
            metrics.VISITS.labels(phase).set(count)
