"""40,000 alerts of 80 KB through the relay, a broker outage and a SIGKILL on the way.

The relay runs as the pod runs it (``shutterline relay``, configured from the environment);
the test plays the pipeline (packets spooled in batches, then the metrics record and the done
marker) and an alert broker (a plain consumer counting keys from the first offset).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

from shutterline.alerts import spool as alert_spool
from shutterline.relay import markers, producer
from tests.e2e import relay_harness as harness
from tests.unit.relay import packets

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

N = 40_000
BATCH = 250


def _pipeline(spool: Path, done: threading.Event) -> None:
    """Spool every packet (as `AlertSpool.write_many` does for a detector), then the markers."""
    writer = alert_spool.AlertSpool(spool, fsync=False)
    ids = packets.ids(N)
    for start in range(0, N, BATCH):
        batch = list(packets.payloads(ids[start : start + BATCH]))
        writer.write_many(batch, visit=harness.VISIT, detector=harness.DETECTOR)
    markers.write_metrics(spool, harness.VISIT, harness.DETECTOR, {"dia_sources": N})
    markers.write_done(spool, harness.VISIT, harness.DETECTOR, "succeeded", N)
    done.set()


def test_forty_thousand_alerts_survive_a_broker_outage_and_a_sigkill(kafka_broker, tmp_path):
    topic = harness.unique_topic("alerts")
    harness.create_topics(kafka_broker.bootstrap, topic, f"{topic}-metrics")
    spool = tmp_path / "spool"
    spool.mkdir()
    env = harness.relay_env(spool, kafka_broker.bootstrap, topic, SHUTTERLINE_RELAY_GIVE_UP_S="120")
    counter = harness.KeyCounter(kafka_broker.bootstrap, topic).start()
    log = tmp_path / "relay.log"
    relay = harness.start_relay(env, log)
    written = threading.Event()
    pipeline = threading.Thread(target=_pipeline, args=(spool, written), daemon=True)
    started = time.monotonic()
    pipeline.start()
    try:
        # A third of the way: the broker goes away for 20 s, then comes back.
        counter.wait_for(N // 3, timeout=400)
        kafka_broker.stop()
        outage = time.monotonic()
        time.sleep(20)
        kafka_broker.start()
        outage_s = time.monotonic() - outage
        assert relay.poll() is None, "the relay must ride out the outage"
        # Two thirds of the way: the relay dies without a chance to clean up, and restarts.
        counter.wait_for(2 * N // 3, timeout=400)
        before_kill = dict(counter.counts)
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
        relay = harness.start_relay(env, log)
        assert relay.wait(timeout=600) == 0, log.read_text()[-3000:]
        elapsed = time.monotonic() - started
        pipeline.join(10)
        counter.wait_for(N, timeout=60)
        time.sleep(2)  # let any late copies arrive before counting
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(10)
        summary = counter.stop()

    # None lost: every alert id, and nothing left behind in the spool.
    assert summary["unique"] == N
    assert set(counter.counts) == {str(i).encode() for i in packets.ids(N)}
    assert not list(spool.glob("*.alert"))
    # None duplicated by the outage: no alert delivered twice before the kill.
    assert all(n == 1 for n in before_kill.values())
    # The kill's window: alerts acknowledged by the broker whose reports the dead relay had not
    # processed yet are sent again by the new one; at most the in-flight window.
    duplicated = summary["duplicated"]
    assert len(duplicated) <= producer.Tuning().max_in_flight_packets
    assert all(n == 2 for n in duplicated.values())
    assert all(len(p) == 1 for p in counter.partition_of.values()), "one partition per key"
    status = json.loads((spool / markers.STATUS).read_text())
    assert status["state"] == "drained" and status["published"] == ["100007_7"]
    print(
        f"\n{N} alerts in {elapsed:.0f} s (broker down {outage_s:.0f} s); consumer saw "
        f"{summary['messages']} messages, {len(duplicated)} alert ids twice (SIGKILL window)"
    )
    assert "broker" in log.read_text() and "unreachable" in log.read_text()
