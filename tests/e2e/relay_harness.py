"""Shared pieces of the relay tests: the relay as the pod runs it, a key-counting consumer."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.testbed import procs

__all__ = ["KeyCounter", "create_topics", "relay_env", "start_relay", "unique_topic"]

VISIT, DETECTOR = 100007, 7


def unique_topic(prefix: str) -> str:
    """A topic name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topics(bootstrap: str, *names: str, partitions: int = 3) -> None:
    """Create topics (replication 1) and wait until they exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for future in futures.values():
        future.result(30)


def relay_env(spool: Path, bootstrap: str, alert_topic: str, **extra: str) -> dict[str, str]:
    """The environment the operator gives the alert-relay container of detector 7's pod."""
    env = dict(os.environ)
    env.update(
        {
            "SHUTTERLINE_REPO": "s3://unused/repo",
            "SHUTTERLINE_APDB": "postgresql://unused/apdb",
            "SHUTTERLINE_SPOOL": str(spool),
            "SHUTTERLINE_KAFKA_BOOTSTRAP": bootstrap,
            "SHUTTERLINE_ALERT_TOPIC": alert_topic,
            "SHUTTERLINE_METRICS_TOPIC": f"{alert_topic}-metrics",
            "SHUTTERLINE_VISIT_SPEC": json.dumps({"visitId": VISIT, "instrument": "SimDECam"}),
            "SHUTTERLINE_DETECTORS": f"3,{DETECTOR}",
            "JOB_COMPLETION_INDEX": "1",
            "POD_NAME": "visit-100007-1-abcde",
        }
    )
    env.update(extra)
    return env


def start_relay(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``shutterline relay`` in its own process, output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "shutterline.cli.main", "relay"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class KeyCounter:
    """Reads a topic from the beginning in a thread and counts every key, as a broker would.

    Nothing of Shutterline's: a plain confluent-kafka consumer assigned to every partition.
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int = 3) -> None:
        self.counts: collections.Counter[bytes] = collections.Counter()
        self.partition_of: dict[bytes, set[int]] = collections.defaultdict(set)
        self.values: dict[bytes, bytes] = {}
        self.keep_values = False
        self.messages = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique_topic("counter"),
                "enable.auto.commit": False,
                "fetch.max.bytes": 64 * 2**20,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> KeyCounter:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, timeout=0.2):
                if message.error():
                    self.errors.append(str(message.error()))
                    continue
                key = message.key() or b""
                with self._lock:
                    self.counts[key] += 1
                    self.partition_of[key].add(message.partition() or 0)
                    self.messages += 1
                    if self.keep_values:
                        self.values[key] = message.value() or b""

    def wait_for(self, unique: int, timeout: float) -> None:
        """Wait until ``unique`` distinct keys have arrived."""
        procs.wait_until(lambda: len(self.counts) >= unique, timeout, f"{unique} distinct keys")

    def stop(self) -> dict[str, Any]:
        """Stop reading; a summary: messages, distinct keys, duplicated keys."""
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()
        duplicated = {k: n for k, n in self.counts.items() if n > 1}
        return {"messages": self.messages, "unique": len(self.counts), "duplicated": duplicated}
