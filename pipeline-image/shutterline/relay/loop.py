"""The relay loop: spool -> Kafka, a packet deleted only after its delivery report.

One thread does everything: it scans the spool (a poll every ``poll_interval_s``: the
standard library has no inotify; a scan costs 5 us of CPU for an empty spool and 0.6 ms
for a thousand names, and the relay rescans only once it has handed out the names of the
last scan, so a 20 ms poll adds at most that to a packet's latency, works on every file
system an emptyDir may sit on and needs no extra dependency), reads and checks
each new packet, hands it to the producer while the in-flight window has room, and serves
the producer's delivery reports, which delete the packets. A failed report puts the packet
back in line; nothing is ever dropped. While the broker is away the window fills and the
loop only polls: memory stays bounded and the producer reconnects with back-off.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import confluent_kafka

from shutterline import exceptions
from shutterline.alerts import serialize
from shutterline.pipeline import settings as settings_mod
from shutterline.relay import finish, framing, markers, metrics, producer, schemas, spoolfiles

__all__ = ["Outcome", "Relay"]

log = logging.getLogger(__name__)

Key = tuple[int, int]
_UNREACHABLE = {
    confluent_kafka.KafkaError._TRANSPORT,
    confluent_kafka.KafkaError._ALL_BROKERS_DOWN,
    confluent_kafka.KafkaError._RESOLVE,
}


@dataclasses.dataclass(frozen=True)
class _Scan:
    """The last pass over the spool: its number, when, packets (by detector), done markers."""

    number: int = -1
    at: float = 0.0
    depth: int = 0
    keys: collections.Counter[Key] = dataclasses.field(default_factory=collections.Counter)
    done: set[Key] = dataclasses.field(default_factory=set)


class Outcome:
    """How a relay run ended: ``state`` (drained / gave_up / stopped), reason, exit code."""

    def __init__(self, state: str, reason: str, exit_code: int, status: dict[str, Any]) -> None:
        self.state, self.reason, self.exit_code, self.status = state, reason, exit_code, status

    def __repr__(self) -> str:
        return f"Outcome({self.state!r}, {self.reason!r}, exit {self.exit_code})"


class Relay:
    """Drain ``settings.spool`` to ``settings.alert_topic`` until the pipeline is done.

    Parameters
    ----------
    settings
        Broker, topics, registry, give-up time and the spool.
    expect
        The ``(visit, detector)`` pairs whose done markers end the run; None: every done
        marker seen (a pod's single detector).
    tuning
        Loop and producer knobs.
    parent
        Trace context for the per-detector publication spans.
    stop
        Set it (SIGTERM) to stop: in-flight packets get a few seconds, the rest stays.
    """

    def __init__(
        self,
        settings: settings_mod.Settings,
        *,
        expect: Iterable[Key] | None = None,
        tuning: producer.Tuning | None = None,
        parent: Any = None,
        stop: threading.Event | None = None,
    ) -> None:
        if not settings.kafka_bootstrap:
            raise exceptions.PermanentError("no broker: SHUTTERLINE_KAFKA_BOOTSTRAP is empty")
        self.settings = settings
        self.spool = Path(settings.spool)
        self._spool_path = str(self.spool)
        self.expect = None if expect is None else set(expect)
        self.tuning = tuning or producer.Tuning()
        self.parent = parent
        self.stop = stop or threading.Event()
        self.schema = serialize.load_schema()
        self.tallies: dict[Key | None, finish.Tally] = collections.defaultdict(finish.Tally)
        self.published: set[Key] = set()
        self.counters = {"retries": 0, "quarantined": 0, "delivery_errors": 0}
        #: Seconds from rename into the spool to delivery report, of the latest deliveries.
        self.latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self._backlog: collections.deque[str] = collections.deque()
        self._resend: collections.deque[str] = collections.deque()
        self._flights: dict[str, tuple[int, Key | None]] = {}
        self._flight_bytes = 0
        self._flight_keys: collections.Counter[Key | None] = collections.Counter()
        self._unreported = [0, 0]  # packets, bytes delivered since the counters were updated
        self._records: set[Key] = set()  # metrics records in flight
        self._scan = _Scan()
        self._done_seen: dict[Key, int] = {}
        self._stalled_since: float | None = None
        self._down_since: float | None = None
        self._down_logged = 0.0
        self._down_reason = ""
        self._fatal: str | None = None
        self._failure_logged: dict[int, float] = {}
        self._last_txretries = 0
        self._closing = False
        self._producer = self._new_producer()

    # ----- the loop -------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Relay until drained, given up or stopped; writes ``relay.status.json`` (not on stop)."""
        self._resume()
        started = time.monotonic()
        registry = self._ensure_schema(started)
        if registry is not None:
            return registry
        log.info("relaying %s -> %s (topic %s)", self.spool, self.settings.kafka_bootstrap,
                 self.settings.alert_topic)  # fmt: skip
        while True:
            if self.stop.is_set():
                return self._stopped()
            if self._fatal:
                self._replace_producer()
            busy = self._feed()
            self._producer.poll(0 if busy else self.tuning.poll_interval_s)
            self._report_metrics()
            self._finish_detectors()
            if self._drained():
                return self._finish("drained", "spool drained", 0)
            if self._stalled():
                return self._give_up()

    def _resume(self) -> None:
        """Detectors a previous run of this relay already published stay published."""
        previous = markers.read_json(self.spool / markers.STATUS)
        if isinstance(previous, dict):
            for name in previous.get("published", []):
                visit, detector = (int(x) for x in str(name).split("_"))
                self.published.add((visit, detector))

    def _ensure_schema(self, started: float) -> Outcome | None:
        """Check the registry (retrying while it is away, up to the give-up time)."""
        url = self.settings.schema_registry_url
        if not url:
            return None
        delay, subject = 0.5, f"{self.settings.alert_topic}-value"
        while True:
            try:
                log.info(schemas.ensure_schema(url, self.schema, subject))
                return None
            except schemas.RegistryUnreachableError as exc:
                waited = time.monotonic() - started
                if waited > self.settings.relay_give_up_s:
                    return self._finish("gave_up", str(exc), exceptions.EXIT_RELAY_UNAVAILABLE)
                log.warning("%s; retrying in %.1f s", exc, delay)
                if self.stop.wait(delay):
                    return self._stopped()
                delay = min(delay * 2, 10.0)

    # ----- feeding the producer -------------------------------------------------------------

    def _room(self) -> bool:
        return (
            len(self._flights) < self.tuning.max_in_flight_packets
            and self._flight_bytes < self.tuning.max_in_flight_bytes
        )

    def _rescan(self) -> None:
        """One pass over the spool: packet names (new ones join the line) and done markers."""
        names = spoolfiles.scan_names(self.spool)
        keys: collections.Counter[Key] = collections.Counter()
        for name in names:
            parsed = spoolfiles.parse_name(name)
            if parsed is not None and parsed[0] is not None and parsed[1] is not None:
                keys[(parsed[0], parsed[1])] += 1
        done = set(markers.done_markers(self.spool))
        self._scan = _Scan(self._scan.number + 1, time.monotonic(), len(names), keys, done)
        metrics.SPOOL_DEPTH.set(len(names))
        self._backlog.extend(n for n in names if n not in self._flights)

    def _feed(self) -> bool:
        """Hand new packets to the producer while the window has room; True if any went."""
        if not self._room():
            return False
        if not self._backlog and not self._resend:
            if time.monotonic() - self._scan.at < self.tuning.poll_interval_s:
                return False
            self._rescan()
        sent = 0
        while self._room() and (self._resend or self._backlog):
            name = self._resend.popleft() if self._resend else self._backlog.popleft()
            if name not in self._flights and self._send(name):
                sent += 1
                if sent % 32 == 0:
                    self._producer.poll(0)
        return sent > 0

    def _send(self, name: str) -> bool:
        """Read, check and produce one packet; False if it went away or was quarantined."""
        packet = spoolfiles.read_packet(self._spool_path, name)
        if packet is None:
            return False
        try:
            if packet.name_id is None:
                raise framing.CorruptPacketError("name is not [<visit>_<detector>_]<id>.alert")
            alert_id = framing.check_packet(
                packet.payload, self.schema, packet.checksum, self.settings.relay_full_check
            )
            if packet.name_id != alert_id:
                raise framing.CorruptPacketError(f"named {packet.name_id}, holds alert {alert_id}")
        except framing.CorruptPacketError as exc:
            self._quarantine(name, str(exc))
            return False
        size, key = len(packet.payload), packet.detector_key
        report = functools.partial(self._delivered, name, size, key, packet.spooled_at)
        self._produce(self.settings.alert_topic, str(alert_id).encode(), packet.payload, report)
        self._flights[name] = (size, key)
        self._flight_bytes += size
        self._flight_keys[key] += 1
        return True

    def _produce(self, topic: str, key: bytes, value: bytes, report: Any) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=report)
                return
            except BufferError:  # the producer's own queue is full: let it drain
                self._producer.poll(0.05)

    def _report_metrics(self) -> None:
        """Gauges and counters once per loop turn, not once per packet."""
        metrics.IN_FLIGHT_PACKETS.set(len(self._flights))
        metrics.IN_FLIGHT_BYTES.set(self._flight_bytes)
        if self._unreported[0]:
            metrics.PACKETS.inc(self._unreported[0])
            metrics.BYTES.inc(self._unreported[1])
            self._unreported = [0, 0]

    def _quarantine(self, name: str, reason: str) -> None:
        spoolfiles.quarantine(self.spool, name, reason)
        self.counters["quarantined"] += 1
        metrics.QUARANTINED.inc()

    # ----- delivery reports -----------------------------------------------------------------

    def _delivered(
        self, name: str, size: int, key: Key | None, spooled_at: float, err: Any, _msg: Any
    ) -> None:
        """Delivery report of one packet: delete it, or put it back in line."""
        self._flights.pop(name, None)
        self._flight_bytes -= size
        self._flight_keys[key] -= 1
        if self._closing:
            return
        if err is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._spool_path, name))
            now = time.time()
            self.tallies[key].add(size, now)
            self._unreported[0] += 1
            self._unreported[1] += size
            latency = max(0.0, now - spooled_at)
            self.latencies.append(latency)
            metrics.LATENCY.observe(latency)
            self._progress()
            return
        self.counters["delivery_errors"] += 1
        metrics.DELIVERY_ERRORS.inc()
        if err.code() == confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE:
            self._quarantine(name, f"rejected by the broker: {err.str()}")
            return
        now = time.monotonic()
        if now - self._failure_logged.get(err.code(), -60.0) > self.tuning.outage_log_every_s:
            self._failure_logged[err.code()] = now  # one line per kind of failure and interval
            log.warning("delivery of %s failed (%s); it stays spooled and is sent again", name, err)
        self.counters["retries"] += 1
        metrics.RETRIES.inc()
        self._resend.append(name)

    def _progress(self) -> None:
        self._stalled_since = None
        if self._down_since is not None:
            log.warning("broker reachable again after %.0f s", time.monotonic() - self._down_since)
            self._down_since = None
        metrics.BROKER_UP.set(1)

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self._fatal = err.str()
            return
        if err.code() in _UNREACHABLE and self._down_since is None:
            self._down_since = self._down_logged = time.monotonic()
            self._down_reason = err.str()
            metrics.BROKER_UP.set(0)
            log.warning(
                "broker %s unreachable (%s): %d packets in flight stay spooled; retrying with "
                "back-off, giving up after %.0f s without a delivery",
                self.settings.kafka_bootstrap, err.str(), len(self._flights),
                self.settings.relay_give_up_s,
            )  # fmt: skip

    def _on_stats(self, text: str) -> None:
        """The producer's own resends (``txretries``) count as retries too."""
        stats = json.loads(text)
        total = sum(int(b.get("txretries", 0)) for b in stats.get("brokers", {}).values())
        if total > self._last_txretries:
            metrics.RETRIES.inc(total - self._last_txretries)
            self.counters["retries"] += total - self._last_txretries
        self._last_txretries = max(total, self._last_txretries)

    def _new_producer(self) -> confluent_kafka.Producer:
        config = producer.producer_config(
            str(self.settings.kafka_bootstrap),
            self.tuning,
            error_cb=self._on_error,
            stats_cb=self._on_stats,
        )
        return confluent_kafka.Producer(config)

    def _replace_producer(self) -> None:
        """After a fatal producer error: a new producer; unreported packets go again."""
        log.error("producer failed fatally (%s); starting a new one, resending %d packets",
                  self._fatal, len(self._flights))  # fmt: skip
        self._closing = True
        self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        self._producer.poll(0)
        self._closing = False
        self._resend.extend(self._flights)
        self._flights.clear()
        self._flight_bytes, self._flight_keys = 0, collections.Counter()
        self._records.clear()
        self._fatal = None
        self._last_txretries = 0
        self._producer = self._new_producer()

    # ----- finishing detectors --------------------------------------------------------------

    def _finish_detectors(self) -> None:
        """Publish the record of every done detector none of whose packets remain."""
        scan = self._scan
        for key in self._done_keys():
            if key in self.published or key in self._records:
                continue
            seen = self._done_seen.setdefault(key, scan.number)
            # A scan that began after the marker was first seen lists every earlier packet.
            if scan.number <= seen or scan.keys.get(key) or self._flight_keys.get(key):
                continue
            self._records.add(key)
            record = finish.detector_record(self.spool, key, self.tallies[key])
            report = functools.partial(self._record_delivered, key)
            name = f"{key[0]}_{key[1]}".encode()
            self._produce(self.settings.metrics_topic, name, record, report)

    def _done_keys(self) -> set[Key]:
        """Done detectors this relay answers for (all of them unless told which)."""
        done = self._scan.done
        return done if self.expect is None else done & self.expect

    def _record_delivered(self, key: Key, err: Any, _msg: Any) -> None:
        self._records.discard(key)
        if self._closing:
            return
        if err is not None:
            log.warning("metrics record of %s/%s not delivered (%s); sending again", *key, err)
            self.counters["retries"] += 1
            metrics.RETRIES.inc()
            return
        self.published.add(key)
        self._progress()
        tally = self.tallies[key]
        finish.publication_span(key, tally, self.parent, self.settings.alert_topic)
        log.info("visit %s detector %s: %d alerts delivered, record published", *key, tally.acked)

    def _drained(self) -> bool:
        targets = self.expect if self.expect is not None else self._scan.done
        return (
            bool(targets)
            and targets <= self.published
            and self._scan.depth == 0
            and not self._flights
            and not self._backlog
            and not self._resend
            and not self._records
        )

    # ----- giving up, stopping --------------------------------------------------------------

    def _stalled(self) -> bool:
        """True once work has waited ``relay_give_up_s`` without a single delivery."""
        depth = self._scan.depth
        pending = self._flights or self._records or self._backlog or self._resend or depth
        pending = pending or (self._done_keys() - self.published)
        now = time.monotonic()
        if not pending:
            self._stalled_since = None
            return False
        if self._stalled_since is None:
            self._stalled_since = now
        down = self._down_since
        if down is not None and now - self._down_logged > self.tuning.outage_log_every_s:
            self._down_logged = now
            log.warning(
                "broker unreachable for %.0f s; %d packets waiting; giving up in %.0f s",
                now - down, self._waiting(),
                self.settings.relay_give_up_s - (now - self._stalled_since),
            )  # fmt: skip
        return now - self._stalled_since > self.settings.relay_give_up_s

    def _waiting(self) -> int:
        """Packets known to wait: in flight, in line, or at the last scan."""
        queued = len(self._flights) + len(self._backlog) + len(self._resend)
        return max(queued, self._scan.depth)

    def _give_up(self) -> Outcome:
        depth = len(spoolfiles.scan_names(self.spool))
        reason = (
            f"broker {self.settings.kafka_bootstrap} delivered nothing for "
            f"{self.settings.relay_give_up_s:.0f} s ({self._down_reason or 'no delivery report'}); "
            f"{depth} packets left in the spool"
        )
        log.error("giving up: %s", reason)
        self._close(flush_s=0.0)
        return self._finish("gave_up", reason, exceptions.EXIT_RELAY_UNAVAILABLE, closed=True)

    def _stopped(self) -> Outcome:
        """SIGTERM: let in-flight reports arrive for a moment, keep the rest spooled."""
        self._close(flush_s=5.0)
        left = len(spoolfiles.scan_names(self.spool))
        reason = f"stopped by a signal; {left} packets left in the spool"
        log.warning(reason)
        code = exceptions.EXIT_RETRIABLE if left else 0
        return Outcome("stopped", reason, code, self._status("stopped", reason))

    def _close(self, flush_s: float) -> None:
        if flush_s > 0:
            self._producer.flush(flush_s)
        self._closing = True
        self._producer.purge(in_queue=True, in_flight=True, blocking=False)
        self._producer.poll(0)

    def _status(self, state: str, reason: str) -> dict[str, Any]:
        self._report_metrics()
        status = finish.status_document(state, reason, self.tallies, self.published, self.counters)
        status["latency_s"] = finish.quantiles(self.latencies)
        return status

    def _finish(self, state: str, reason: str, code: int, closed: bool = False) -> Outcome:
        if not closed:
            self._close(flush_s=5.0)
        status = self._status(state, reason)
        markers.write_json(self.spool / markers.STATUS, status)
        log.info("relay %s: %s (%d packets delivered)", state, reason, status["acked"])
        return Outcome(state, reason, code, status)
