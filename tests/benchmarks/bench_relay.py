"""Alert relay throughput and latency for 80 KB packets on loopback.

Run: ``.venv/bin/python tests/benchmarks/bench_relay.py [--packets 3000] [--repeat 3]``.

Starts the test bed's Kafka broker on loopback, then, in the same run:

1. throughput, ``--repeat`` times in alternating order: the relay draining a spool of
   ``--packets`` real 79 KB alert packets (read, checked, produced, each deleted after its
   delivery report) beside the plain confluent-kafka producer with the same configuration
   sending the same bytes from memory; packets/s, MB/s and the ratio of medians (target
   >= 0.8); one more plain run with zstd instead of lz4 for the compression choice;
2. latency: a writer renames packets into the spool at a steady rate (batches of 10 every
   20 ms, about 40 MB/s) while the relay runs; the time from each packet's rename into the
   spool to its delivery report: median and p99.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the sys.path set-up that makes tests/ importable)
import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import confluent_kafka
from tests.testbed import kafka
from tests.unit.relay import packets

from shutterline.alerts import spool as alert_spool
from shutterline.pipeline import settings as settings_mod
from shutterline.relay import loop, markers, producer

VISIT, DETECTOR = 100007, 7


def _settings(spool: Path, bootstrap: str, topic: str) -> settings_mod.Settings:
    return settings_mod.Settings(
        repo="unused",
        apdb="unused",
        spool=spool,
        workdir=spool,
        kafka_bootstrap=bootstrap,
        alert_topic=topic,
        metrics_topic=f"{topic}-metrics",
    )


Payloads = list[tuple[int, bytes]]


def plain_producer(bootstrap: str, payloads: Payloads, tuning: producer.Tuning) -> float:
    """Seconds for the plain producer to send ``payloads`` and have every one acknowledged."""
    config = producer.producer_config(bootstrap, tuning)
    config.pop("logger")
    started = time.perf_counter()
    client = confluent_kafka.Producer(config)
    failed: list[Any] = []
    report = lambda err, _msg: failed.append(err) if err else None  # noqa: E731
    topic = f"plain-{time.monotonic_ns()}"
    for alert_id, payload in payloads:
        while True:
            try:
                client.produce(topic, value=payload, key=str(alert_id).encode(), on_delivery=report)
                break
            except BufferError:
                client.poll(0.05)
        client.poll(0)
    client.flush(120)
    if failed:
        raise RuntimeError(f"plain producer: {len(failed)} failed deliveries: {failed[0]}")
    return time.perf_counter() - started


def relay_drain(bootstrap: str, payloads: Payloads, work: Path) -> float:
    """Seconds for the relay to drain a spool holding ``payloads`` (written beforehand)."""
    spool = work / f"spool-{time.monotonic_ns()}"
    alert_spool.AlertSpool(spool, fsync=False).write_many(payloads, visit=VISIT, detector=DETECTOR)
    markers.write_done(spool, VISIT, DETECTOR, "succeeded", len(payloads))
    settings = _settings(spool, bootstrap, f"relay-{time.monotonic_ns()}")
    started = time.perf_counter()
    outcome = loop.Relay(settings, expect={(VISIT, DETECTOR)}).run()
    seconds = time.perf_counter() - started
    if outcome.state != "drained" or outcome.status["acked"] != len(payloads):
        raise RuntimeError(f"relay: {outcome}")
    return seconds


def latency(bootstrap: str, payloads: Payloads, work: Path) -> dict[str, float]:
    """Rename-to-delivery-report times while a writer spools at a steady rate."""
    spool = work / "latency-spool"
    writer = alert_spool.AlertSpool(spool, fsync=False)
    relay = loop.Relay(_settings(spool, bootstrap, "latency"), expect={(VISIT, DETECTOR)})

    def write() -> None:
        for start in range(0, len(payloads), 10):
            writer.write_many(payloads[start : start + 10], visit=VISIT, detector=DETECTOR)
            time.sleep(0.02)
        markers.write_done(spool, VISIT, DETECTOR, "succeeded", len(payloads))

    thread = threading.Thread(target=write)
    thread.start()
    outcome = relay.run()
    thread.join()
    if outcome.status["acked"] != len(payloads):
        raise RuntimeError(f"latency run: {outcome}")
    ordered = sorted(relay.latencies)
    return {
        "median": statistics.median(ordered),
        "p99": ordered[int(0.99 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    payloads = list(packets.payloads(packets.ids(args.packets)))
    megabytes = sum(len(p) for _, p in payloads) / 1e6
    print(f"{args.packets} packets of {len(payloads[0][1]) / 1e3:.1f} kB ({megabytes:.0f} MB)")
    tuning = producer.Tuning()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        work = Path(tmp)
        broker = kafka.start(work / "kafka")
        try:
            plain_producer(broker.bootstrap, payloads[:200], tuning)  # warm the broker up
            plain, relayed = [], []
            for i in range(args.repeat):
                order = ("plain", "relay") if i % 2 == 0 else ("relay", "plain")
                for which in order:
                    if which == "plain":
                        plain.append(plain_producer(broker.bootstrap, payloads, tuning))
                    else:
                        relayed.append(relay_drain(broker.bootstrap, payloads, work))
                print(
                    f"  run {i + 1}: plain {plain[-1]:.2f} s, relay {relayed[-1]:.2f} s", flush=True
                )
            zstd = plain_producer(
                broker.bootstrap, payloads, dataclasses.replace(tuning, compression="zstd")
            )
            late = latency(broker.bootstrap, payloads[: min(2000, len(payloads))], work)
        finally:
            broker.stop()
    p, r = statistics.median(plain), statistics.median(relayed)
    print("\nthroughput (median of runs)      packets/s     MB/s")
    print(f"  plain producer, from memory     {args.packets / p:9.0f} {megabytes / p:8.1f}")
    print(f"  relay, spool -> Kafka           {args.packets / r:9.0f} {megabytes / r:8.1f}")
    print(f"  plain producer, zstd (1 run)    {args.packets / zstd:9.0f} {megabytes / zstd:8.1f}")
    print(f"  ratio relay / plain: {p / r:.2f} (target >= 0.8)")
    print(
        f"\nrename -> delivery report ({min(2000, args.packets)} packets at ~500/s): "
        f"median {late['median'] * 1e3:.1f} ms, p99 {late['p99'] * 1e3:.1f} ms, "
        f"max {late['max'] * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
