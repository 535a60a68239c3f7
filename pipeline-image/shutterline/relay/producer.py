"""The relay's Kafka producer: idempotent, ``acks=all``, batched and compressed for ~80 KB.

Why these settings:

* ``enable.idempotence`` (implies ``acks=all``, at most 5 requests in flight, unlimited
  retries): a packet resent by the producer after a lost acknowledgement is written once.
* ``message.timeout.ms = 0``: the producer never gives a packet up by itself; the relay's
  own give-up (``SHUTTERLINE_RELAY_GIVE_UP_S``) decides, and leaves the spool as it is.
* ``partitioner = murmur2_random``: the Java client's partitioner, so every client maps an
  alert id to the same partition and the copies of a resent alert stay in order.
* ``linger.ms`` 5 and ``batch.size`` 1 MB: about 12 packets of 80 KB per batch (the
  broker's default ``message.max.bytes`` is 1 MiB), one request per batch without adding
  more than a few milliseconds; ``lz4`` compression: the cutouts are noisy floats that
  compress little, the headers and the catalog fields a lot, and lz4 costs a fraction of
  zstd's CPU on the same bytes (see ``tests/benchmarks/bench_relay.py``).
* ``queue.buffering.max.*`` a little above the relay's in-flight caps: the relay bounds
  its memory itself, the producer's queue never becomes the limit that blocks.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

__all__ = ["Tuning", "producer_config"]


class _Repeats(logging.Filter):
    """One line of each kind per ``every_s``: a broker that is down makes librdkafka log
    every reconnect attempt, and the relay says so itself in one clear line."""

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = record.getMessage().split(": ", 1)[0]  # "FAIL [client] [thrd:broker]"
        now = time.monotonic()
        if now - self._last.get(kind, -self.every_s) < self.every_s:
            return False
        self._last[kind] = now
        return True


_LIBRDKAFKA = logging.getLogger("shutterline.relay.librdkafka")
_LIBRDKAFKA.addFilter(_Repeats())


@dataclasses.dataclass(frozen=True)
class Tuning:
    """Knobs of the relay loop and its producer (defaults measured for 80 KB packets).

    Attributes
    ----------
    poll_interval_s
        Spool scan interval and producer poll time when idle.
    max_in_flight_packets, max_in_flight_bytes
        At most this much handed to the producer and not yet reported: the relay's memory.
    linger_ms, batch_bytes, compression
        Producer batching and compression.
    outage_log_every_s
        How often an ongoing broker outage is logged again.
    """

    poll_interval_s: float = 0.02
    max_in_flight_packets: int = 1000
    max_in_flight_bytes: int = 64 * 2**20
    linger_ms: int = 5
    batch_bytes: int = 1_000_000
    compression: str = "lz4"
    outage_log_every_s: float = 10.0


def producer_config(bootstrap: str, tuning: Tuning, **callbacks: Any) -> dict[str, Any]:
    """confluent-kafka ``Producer`` configuration for ``bootstrap`` (``callbacks`` added)."""
    return {
        "bootstrap.servers": bootstrap,
        "client.id": "shutterline-relay",
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": 0,
        "partitioner": "murmur2_random",
        "linger.ms": tuning.linger_ms,
        "batch.size": tuning.batch_bytes,
        "compression.type": tuning.compression,
        "queue.buffering.max.messages": tuning.max_in_flight_packets + 100,
        "queue.buffering.max.kbytes": tuning.max_in_flight_bytes // 1024 + 4096,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 2000,
        "retry.backoff.ms": 100,
        "retry.backoff.max.ms": 1000,
        "statistics.interval.ms": 2000,
        "log.connection.close": False,
        "logger": _LIBRDKAFKA,
        **callbacks,
    }
