"""Alert relay throughput and latency for 80 KB packets on loopback.

Run: ``.venv/bin/python tests/benchmarks/bench_relay.py [--packets 3000] [--repeat 5]
[--quick]``.

Starts the test bed's Kafka broker on loopback, then, in the same run:

1. throughput, ``--repeat`` rounds; each round runs, in an order that rotates from round to
   round, the plain confluent-kafka producer with the relay's configuration sending
   ``--packets`` real 79 KB alert packets from memory (the baseline), the relay draining a
   spool of the same packets (read, checksum checked, produced, each deleted after its
   delivery report, then the detector's metrics record), and the relay decoding every
   Avro body (``SHUTTERLINE_RELAY_FULL_CHECK``, the check it made before the writer's
   checksum). For each: packets/s and MB/s (medians of the rounds), and CPU milliseconds
   per packet of this process, librdkafka's threads included (less sensitive to other work
   on the machine than wall time). Ratios are taken within each round, so a slow minute
   slows both sides of one ratio; the median and the range over the rounds are reported
   (target: relay / plain >= 0.8 in packets/s);
2. (not with ``--quick``) one plain run with zstd instead of lz4, for the compression
   choice;
3. latency: a writer renames packets into the spool at a steady rate (batches of 10 every
   20 ms, about 40 MB/s) while the relay runs; the time from each packet's rename into the
   spool to its delivery report: median and p99.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the sys.path set-up that makes tests/ importable)
import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _results
import confluent_kafka
from tests.e2e import relay_harness
from tests.testbed import kafka
from tests.unit.relay import packets

from shutterline.alerts import spool as alert_spool
from shutterline.pipeline import settings as settings_mod
from shutterline.relay import loop, markers, producer

VISIT, DETECTOR = 100007, 7
#: Partitions of every topic (created before the clock starts: a pod's topics exist already).
PARTITIONS = 3
COMMAND = ".venv/bin/python tests/benchmarks/bench_relay.py"

Payloads = list[tuple[int, bytes]]
Timing = tuple[float, float]  # wall seconds, CPU seconds of this process


def _settings(spool: Path, bootstrap: str, topic: str, **extra: Any) -> settings_mod.Settings:
    return settings_mod.Settings(
        repo="unused",
        apdb="unused",
        spool=spool,
        workdir=spool,
        kafka_bootstrap=bootstrap,
        alert_topic=topic,
        metrics_topic=f"{topic}-metrics",
        **extra,
    )


def plain_producer(bootstrap: str, payloads: Payloads, tuning: producer.Tuning) -> Timing:
    """Seconds for the plain producer to send ``payloads`` and have every one acknowledged."""
    config = producer.producer_config(bootstrap, tuning)
    config.pop("logger")
    topic = f"plain-{time.monotonic_ns()}"
    relay_harness.create_topics(bootstrap, topic, partitions=PARTITIONS)
    started, cpu = time.perf_counter(), time.process_time()
    client = confluent_kafka.Producer(config)
    failed: list[Any] = []
    report = lambda err, _msg: failed.append(err) if err else None  # noqa: E731
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
    return time.perf_counter() - started, time.process_time() - cpu


def relay_drain(bootstrap: str, payloads: Payloads, work: Path, full_check: bool) -> Timing:
    """Seconds for the relay to drain a spool holding ``payloads`` (written beforehand)."""
    spool = work / f"spool-{time.monotonic_ns()}"
    alert_spool.AlertSpool(spool, fsync=False).write_many(payloads, visit=VISIT, detector=DETECTOR)
    markers.write_done(spool, VISIT, DETECTOR, "succeeded", len(payloads))
    topic = f"relay-{time.monotonic_ns()}"
    relay_harness.create_topics(bootstrap, topic, f"{topic}-metrics", partitions=PARTITIONS)
    settings = _settings(spool, bootstrap, topic, relay_full_check=full_check)
    started, cpu = time.perf_counter(), time.process_time()
    outcome = loop.Relay(settings, expect={(VISIT, DETECTOR)}).run()
    timing = time.perf_counter() - started, time.process_time() - cpu
    if outcome.state != "drained" or outcome.status["acked"] != len(payloads):
        raise RuntimeError(f"relay: {outcome}")
    return timing


def latency(bootstrap: str, payloads: Payloads, work: Path) -> dict[str, float]:
    """Rename-to-delivery-report times while a writer spools at a steady rate."""
    spool = work / "latency-spool"
    writer = alert_spool.AlertSpool(spool, fsync=False)
    relay_harness.create_topics(bootstrap, "latency", "latency-metrics", partitions=PARTITIONS)
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


def rounds(arms: dict[str, Callable[[], Timing]], repeat: int) -> dict[str, list[Timing]]:
    """Each arm once per round, the order rotated by one from round to round."""
    names = list(arms)
    out: dict[str, list[Timing]] = {name: [] for name in names}
    for i in range(repeat):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            out[name].append(arms[name]())
        line = ", ".join(f"{name} {out[name][-1][0]:.2f} s" for name in names)
        print(f"  round {i + 1}: {line}", flush=True)
    return out


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (range {min(values):.2f}-{max(values):.2f})"


def report(
    n: int, megabytes: float, runs: dict[str, list[Timing]]
) -> list[tuple[str, str, str, str]]:
    """Print the throughput table and the in-round ratios; return the rows for ``make bench``."""
    print(
        f"\n{'throughput (median of rounds)':34} {'packets/s':>9} {'MB/s':>7} {'CPU ms/packet':>14}"
    )
    rows = []
    for label, timings in runs.items():
        wall = statistics.median(t[0] for t in timings)
        cpu = statistics.median(t[1] for t in timings) / n * 1e3
        print(f"  {label:32} {n / wall:9.0f} {megabytes / wall:7.1f} {cpu:14.3f}")
        rows.append(
            (f"relay bench: {label}", f"{n / wall:.0f} packets/s", f"{cpu:.3f} CPU ms/packet")
        )
    plain = runs["plain producer"]
    out = []
    for label in [k for k in runs if k != "plain producer"]:
        speed = [p[0] / r[0] for p, r in zip(plain, runs[label], strict=True)]
        cpu = [r[1] / p[1] for p, r in zip(plain, runs[label], strict=True)]
        print(f"  {label} / plain, within a round: packets/s {_spread(speed)}, CPU {_spread(cpu)}")
        out.append((f"{label} / plain producer, packets/s", _spread(speed), ">= 0.8", COMMAND))
        out.append((f"{label} / plain producer, CPU per packet", _spread(cpu), "1.0", COMMAND))
    return [(f, v, a, COMMAND) for f, v, a in rows] + out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="600 packets, 3 rounds, no zstd")
    args = parser.parse_args()
    if args.quick:
        args.packets, args.repeat = min(args.packets, 600), min(args.repeat, 3)
    payloads = list(packets.payloads(packets.ids(args.packets)))
    megabytes = sum(len(p) for _, p in payloads) / 1e6
    print(f"{args.packets} packets of {len(payloads[0][1]) / 1e3:.1f} kB ({megabytes:.0f} MB); "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    tuning = producer.Tuning()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        work = Path(tmp)
        broker = kafka.start(work / "kafka")
        try:
            bootstrap = broker.bootstrap
            plain_producer(bootstrap, payloads[:200], tuning)  # warm the broker up
            runs = rounds(
                {
                    "plain producer": lambda: plain_producer(bootstrap, payloads, tuning),
                    "relay": lambda: relay_drain(bootstrap, payloads, work, False),
                    "relay, full Avro check": lambda: relay_drain(bootstrap, payloads, work, True),
                },
                args.repeat,
            )
            zstd = None
            if not args.quick:
                zstd = plain_producer(
                    bootstrap, payloads, dataclasses.replace(tuning, compression="zstd")
                )
            late = latency(bootstrap, payloads[: min(2000, len(payloads))], work)
        finally:
            broker.stop()
    rows = report(args.packets, megabytes, runs)
    if zstd is not None:
        print(f"  plain producer, zstd (1 run): {args.packets / zstd[0]:.0f} packets/s, "
              f"{zstd[1] / args.packets * 1e3:.3f} CPU ms/packet")  # fmt: skip
    late_line = (
        f"median {late['median'] * 1e3:.1f} ms, p99 {late['p99'] * 1e3:.1f} ms, "
        f"max {late['max'] * 1e3:.1f} ms"
    )
    print(f"\nrename -> delivery report ({min(2000, args.packets)} packets at ~500/s): {late_line}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    rows.append(("relay: rename into the spool -> delivery report", late_line, "", COMMAND))
    _results.record("bench_relay", rows)


if __name__ == "__main__":
    main()
