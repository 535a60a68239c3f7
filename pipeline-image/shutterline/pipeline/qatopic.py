"""The analysis pod's side of the metrics topic: read a visit's records, publish its QA.

The prompt pods' relays publish one record per detector, keyed ``<visit>_<detector>``
(`shutterline.relay.finish.detector_record`). The analysis reads them from a little before
the visit's observation start (the broker's time index, so a night's topic is not read from
its beginning) up to the end of every partition as it stands; the analysis runs after the
visit's prompt Job has finished, whose relays had published their records before the pods
exited. QA records go on the same topic under the same keys, told apart by
``kind: "qa"`` (the visit's own record is keyed ``<visit>``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from shutterline import exceptions

__all__ = ["publish_records", "read_metrics"]

log = logging.getLogger(__name__)

#: How far before the observation start the search for the visit's records begins, seconds.
_LOOKBACK_S = 3600.0


def _consumer(bootstrap: str) -> Any:
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"shutterline-analysis-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def _start_offsets(consumer: Any, topic: str, since_unix: float, timeout: float) -> list[Any]:
    from confluent_kafka import TopicPartition

    meta = consumer.list_topics(topic, timeout=timeout)
    info = meta.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        return []
    stamp = int(since_unix * 1000)
    wanted = [TopicPartition(topic, p, stamp) for p in sorted(info.partitions)]
    found = consumer.offsets_for_times(wanted, timeout=timeout)
    ends = []
    for tp in found:
        _, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        # No message at or after the time: start at the end (nothing of this visit there).
        tp.offset = high if tp.offset < 0 else tp.offset
        if tp.offset < high:
            ends.append((tp, high))
    consumer.assign([tp for tp, _ in ends])
    return ends


def read_metrics(
    bootstrap: str,
    topic: str,
    visit: int,
    detectors: Iterable[int],
    since_unix: float,
    timeout: float = 60.0,
) -> dict[int, dict[str, Any]]:
    """The latest prompt metrics record of each of ``detectors`` of ``visit`` on ``topic``.

    Raises
    ------
    shutterline.exceptions.RetriableError
        The broker did not answer, or the topic could not be read to its end in ``timeout``.
    """
    from confluent_kafka import KafkaException

    wanted = {f"{visit}_{int(d)}".encode(): int(d) for d in detectors}
    found: dict[int, dict[str, Any]] = {}
    consumer = _consumer(bootstrap)
    try:
        ends = _start_offsets(consumer, topic, since_unix - _LOOKBACK_S, timeout)
        remaining = {(tp.partition): high for tp, high in ends}
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise exceptions.RetriableError(
                    f"metrics topic {topic!r} not read to its end within {timeout:.0f} s"
                )
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            if message.offset() + 1 >= remaining.get(message.partition(), 0):
                remaining.pop(message.partition(), None)
            detector = wanted.get(message.key() or b"")
            if detector is None:
                continue
            record = json.loads(message.value() or b"{}")
            if isinstance(record, dict) and record.get("kind") != "qa":
                found[detector] = record
    except KafkaException as exc:
        raise exceptions.RetriableError(f"reading the metrics topic {topic!r}: {exc}") from exc
    finally:
        consumer.close()
    return found


def publish_records(
    bootstrap: str, topic: str, records: Iterable[tuple[str, Mapping[str, Any]]], timeout: float
) -> int:
    """Produce ``(key, record)`` pairs as JSON and wait for every acknowledgement.

    Raises
    ------
    shutterline.exceptions.RetriableError
        A record was not acknowledged within ``timeout`` seconds.
    """
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errors: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    count = 0
    for key, record in records:
        producer.produce(topic, json.dumps(record).encode(), key.encode(), on_delivery=report)
        producer.poll(0)
        count += 1
    left = producer.flush(timeout)
    if left or errors:
        detail = errors[0] if errors else f"{left} unacknowledged"
        raise exceptions.RetriableError(f"QA records not published to {topic!r}: {detail}")
    return count
