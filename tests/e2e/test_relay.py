"""The relay against the real broker and registry: what an alert broker reads, quarantine,
giving up on a broker that is gone, the publication span."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from lsst.alert import packet as alert_packet

from shutterline.alerts import spool as alert_spool
from shutterline.pipeline import settings as settings_mod
from shutterline.relay import loop, markers
from shutterline.telemetry import tracing
from tests.e2e import relay_harness as harness
from tests.testbed import procs
from tests.unit.alerts import example
from tests.unit.relay import packets

VISIT, DETECTOR = harness.VISIT, harness.DETECTOR


def _settings(spool, bootstrap, topic, **extra):
    return settings_mod.Settings(
        repo="unused",
        apdb="unused",
        spool=spool,
        workdir=spool.parent / "work",
        kafka_bootstrap=bootstrap,
        alert_topic=topic,
        metrics_topic=f"{topic}-metrics",
        **extra,
    )


def _read_all(bootstrap, topic, expected, partitions=3, timeout=60.0):
    """Every message of ``topic`` from the first offset (a plain consumer)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": harness.unique_topic("g")})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages = []
    try:
        procs.wait_until(
            lambda: (
                messages.extend(m for m in consumer.consume(100, 0.5) if not m.error())
                or len(messages) >= expected
            ),
            timeout,
            f"{expected} messages on {topic}",
        )
        messages.extend(m for m in consumer.consume(100, 1.0) if not m.error())
    finally:
        consumer.close()
    return messages


def _pipeline_alerts(tmp_path):
    """Alerts of two visits of the pipeline's stages 6-8 (the second with history)."""
    from shutterline.association import apdb

    handle = apdb.open_apdb(tmp_path / "apdb.sqlite3", create=True)
    first = example.run_visit(handle, 1, 60000.5, with_asteroid=False)
    second = example.run_visit(handle, 2, 60001.5, with_asteroid=True)
    return first.alerts + second.alerts


def _spool_finished_detector(spool: Path, alerts: list[dict]) -> None:
    """What the pipeline leaves for the relay: the alerts, metrics, telemetry and done marker."""
    from shutterline.alerts import serialize

    schema = serialize.load_schema()
    writer = alert_spool.AlertSpool(spool)
    writer.write_many(
        [(a["diaSourceId"], serialize.to_wire(a, schema)) for a in alerts],
        visit=VISIT,
        detector=DETECTOR,
    )
    markers.write_metrics(spool, VISIT, DETECTOR, {"dia_sources": len(alerts), "stages": {}})
    markers.write_json(spool / markers.TELEMETRY, {"cpu_seconds": 1.5, "peak_rss_bytes": 2e8})
    markers.write_done(spool, VISIT, DETECTOR, "succeeded", len(alerts))


def _assert_brokers_decode(
    bootstrap: str, registry_url: str, topic: str, alerts: list[dict]
) -> None:
    """The reading side: confluent-kafka's registry client and deserializer, lsst-alert-packet."""
    # A timeout: the registry once held a keep-alive request unanswered (the client waits
    # forever without one); a timed-out request is retried on a new connection.
    with SchemaRegistryClient({"url": registry_url, "timeout": 10}) as registry:
        deserialize = AvroDeserializer(registry)
        major, minor = alert_packet.get_latest_schema_version()
        reference = alert_packet.Schema.from_uri(
            alert_packet.get_schema_uri(major, minor).join(f"lsst.v{major}_{minor}.alert.avsc")
        )
        messages = _read_all(bootstrap, topic, len(alerts))
        assert len(messages) == len(alerts)
        by_id = {a["diaSourceId"]: a for a in alerts}
        for message in messages:
            assert message.value()[0] == 0 and int.from_bytes(message.value()[1:5], "big") == 1101
            context = SerializationContext(topic, MessageField.VALUE)
            decoded = deserialize(message.value(), context)
            assert reference.validate(decoded)
            assert message.key() == str(decoded["diaSourceId"]).encode()
            original = by_id.pop(decoded["diaSourceId"])
            assert decoded["diaSource"]["psfFlux"] == pytest.approx(
                original["diaSource"]["psfFlux"]
            )
            assert decoded["cutoutDifference"] == original["cutoutDifference"]
    assert not by_id
    assert any(len(a["prvDiaSources"] or []) for a in alerts), "history reached the stream"


@pytest.mark.kafka
@pytest.mark.slow
def test_an_alert_broker_decodes_every_message_with_the_registry(
    kafka_broker, schema_registry, tmp_path
):
    topic = harness.unique_topic("alerts")
    harness.create_topics(kafka_broker.bootstrap, topic, f"{topic}-metrics")
    spool = tmp_path / "spool"
    alerts = _pipeline_alerts(tmp_path)
    _spool_finished_detector(spool, alerts)
    spans = tmp_path / "spans.jsonl"
    tracing.configure("shutterline-relay-test", json_path=spans)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    settings = _settings(
        spool, kafka_broker.bootstrap, topic, schema_registry_url=schema_registry.url
    )
    parent = tracing.pod_context(traceparent, "visit-100007-1-abcde")
    outcome = loop.Relay(settings, expect={(VISIT, DETECTOR)}, parent=parent).run()
    assert outcome.state == "drained" and outcome.exit_code == 0

    _assert_brokers_decode(kafka_broker.bootstrap, schema_registry.url, topic, alerts)

    # The broadcast record, after the alerts; and the publication span under the pod span.
    (record,) = _read_all(kafka_broker.bootstrap, f"{topic}-metrics", 1)
    assert record.key() == b"100007_7"
    document = json.loads(record.value())
    assert document["dia_sources"] == len(alerts) and document["done"]["status"] == "succeeded"
    assert document["telemetry"]["cpu_seconds"] == 1.5
    assert document["relay"]["acked"] == len(alerts)
    (span,) = [json.loads(s) for s in spans.read_text().splitlines() if "publish alerts" in s]
    assert span["name"] == "publish alerts 100007/7"
    assert span["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    pod_span = tracing.pod_span_id(int(span["trace_id"], 16), "visit-100007-1-abcde")
    assert span["parent_span_id"] == f"{pod_span:016x}"
    assert span["attributes"]["shutterline.alerts.delivered"] == len(alerts)
    status = json.loads((spool / markers.STATUS).read_text())
    assert status["acked"] == len(alerts) and status["first_delivery"] <= status["last_delivery"]


@pytest.mark.kafka
def test_corrupt_packets_are_quarantined_not_sent(kafka_broker, tmp_path, caplog):
    topic = harness.unique_topic("alerts")
    harness.create_topics(kafka_broker.bootstrap, topic, f"{topic}-metrics")
    spool = tmp_path / "spool"
    writer = alert_spool.AlertSpool(spool, fsync=False)
    good = packets.ids(5)
    writer.write_many(list(packets.payloads(good)), visit=VISIT, detector=DETECTOR)
    payload = packets.payload(packets.BASE_ID + 99)
    corrupt = {
        f"{VISIT}_{DETECTOR}_1.alert": b"not a packet at all",
        f"{VISIT}_{DETECTOR}_2.alert": b"\x07" + payload[1:],
        f"{VISIT}_{DETECTOR}_3.alert": payload[: len(payload) - 1000],
        f"{VISIT}_{DETECTOR}_4.alert": payload,  # holds alert BASE_ID + 99, not 4
        "junk.alert": payload,
        "a_b_c.alert": payload,
    }
    for name, data in corrupt.items():
        (spool / name).write_bytes(data)
    # Changed in place after the writer (its checksum kept): the Avro still decodes.
    intact = packets.payload(packets.BASE_ID + 98)
    rotten = writer.write(packets.BASE_ID + 98, intact, visit=VISIT, detector=DETECTOR)
    with open(rotten, "r+b") as fh:
        fh.seek(len(intact) // 2)
        fh.write(bytes([intact[len(intact) // 2] ^ 0x01]))
    corrupt[rotten.name] = b""
    markers.write_done(spool, VISIT, DETECTOR, "succeeded", 5)
    caplog.set_level(logging.ERROR, logger="shutterline.relay")
    settings = _settings(spool, kafka_broker.bootstrap, topic)
    outcome = loop.Relay(settings, expect={(VISIT, DETECTOR)}).run()

    assert outcome.state == "drained", outcome
    keys = {m.key() for m in _read_all(kafka_broker.bootstrap, topic, 5)}
    assert keys == {str(i).encode() for i in good}
    quarantined = sorted(p.name for p in (spool / "quarantine").glob("*.alert"))
    assert quarantined == sorted(corrupt)
    assert all((spool / "quarantine" / f"{n}.reason").exists() for n in corrupt)
    assert "the writer recorded" in (spool / "quarantine" / f"{rotten.name}.reason").read_text()
    assert outcome.status["quarantined"] == len(corrupt)
    assert sum("quarantined corrupt packet" in r.message for r in caplog.records) == len(corrupt)
    assert not list(spool.glob("*.alert"))


@pytest.mark.slow
def test_a_full_spool_with_the_broker_gone_exits_69_and_keeps_every_packet(tmp_path):
    spool = tmp_path / "spool"
    writer = alert_spool.AlertSpool(spool, fsync=False)
    writer.write_many(list(packets.payloads(packets.ids(2000))), visit=VISIT, detector=DETECTOR)
    markers.write_done(spool, VISIT, DETECTOR, "succeeded", 2000)
    before = {p.name: p.read_bytes() for p in spool.glob("*.alert")}
    gone = f"127.0.0.1:{procs.free_port()}"  # nothing listens there
    env = harness.relay_env(spool, gone, "alerts", SHUTTERLINE_RELAY_GIVE_UP_S="4")
    relay = harness.start_relay(env, tmp_path / "relay.log")
    try:
        code = relay.wait(timeout=90)
    except subprocess.TimeoutExpired:
        relay.kill()
        raise
    log = (tmp_path / "relay.log").read_text()
    assert code == 69, log[-2000:]
    assert {p.name: p.read_bytes() for p in spool.glob("*.alert")} == before
    status = json.loads((spool / markers.STATUS).read_text())
    assert status["state"] == "gave_up" and status["acked"] == 0
    assert "2000 packets left in the spool" in status["reason"]
    assert "unreachable" in log and "giving up" in log


@pytest.mark.kafka
@pytest.mark.slow
def test_the_embedded_run_publishes_through_the_same_relay(kafka_broker, tmp_path):
    from shutterline.pipeline import visit
    from shutterline.relay import embedded

    topic = harness.unique_topic("alerts")
    harness.create_topics(kafka_broker.bootstrap, topic, f"{topic}-metrics")
    spool = tmp_path / "spool"
    writer = alert_spool.AlertSpool(spool, fsync=False)
    ids = packets.ids(30)
    paths = writer.write_many(list(packets.payloads(ids)), visit=VISIT, detector=DETECTOR)
    reports = [
        visit.DetectorReport(VISIT, DETECTOR, "succeeded", alert_paths=[str(p) for p in paths]),
        visit.DetectorReport(VISIT, 8, "failed", reason="MissingInputError: no flat", exit_code=65),
    ]
    reports[0].quantities = {"dia_sources": 30}
    reports[0].seconds = {"isr": 1.25}
    settings = _settings(spool, kafka_broker.bootstrap, topic)
    outcome = embedded.publish_reports(settings, reports, relay_spool=tmp_path / "relay-spool")

    assert outcome.state == "drained" and outcome.status["acked"] == 30
    assert sorted(outcome.status["published"]) == ["100007_7", "100007_8"]
    assert all(p.exists() for p in paths), "the demo's own packets stay for its report"
    assert not list((tmp_path / "relay-spool").glob("*.alert"))
    keys = {m.key() for m in _read_all(kafka_broker.bootstrap, topic, 30)}
    assert keys == {str(i).encode() for i in ids}
    records = _read_all(kafka_broker.bootstrap, f"{topic}-metrics", 2)
    by_key = {m.key(): json.loads(m.value()) for m in records}
    assert by_key[b"100007_7"]["quantities"]["dia_sources"] == 30
    assert by_key[b"100007_7"]["stages"] == {"isr": 1.25}
    assert by_key[b"100007_8"]["done"] == {"status": "failed", "alerts": 0}
    assert by_key[b"100007_8"]["reason"].startswith("MissingInputError")

    # A relay started again on a drained spool (a restarted sidecar) sends nothing twice.
    relay_settings = _settings(tmp_path / "relay-spool", kafka_broker.bootstrap, topic)
    again = loop.Relay(relay_settings, expect={(VISIT, DETECTOR), (VISIT, 8)}).run()
    assert again.state == "drained" and again.status["acked"] == 0
    assert len(_read_all(kafka_broker.bootstrap, f"{topic}-metrics", 2, timeout=5)) == 2

    # The next visit through the same relay spool publishes its own record only.
    nxt = visit.DetectorReport(VISIT + 1, DETECTOR, "succeeded")
    third = embedded.publish_reports(settings, [nxt], relay_spool=tmp_path / "relay-spool")
    assert third.status["published"] == ["100008_7"]
    assert len(_read_all(kafka_broker.bootstrap, f"{topic}-metrics", 3, timeout=5)) == 3


@pytest.mark.slow
def test_sigterm_keeps_the_spool_and_exits_75_while_packets_remain(tmp_path):
    spool = tmp_path / "spool"
    writer = alert_spool.AlertSpool(spool, fsync=False)
    writer.write_many(list(packets.payloads(packets.ids(50))), visit=VISIT, detector=DETECTOR)
    gone = f"127.0.0.1:{procs.free_port()}"
    env = harness.relay_env(spool, gone, "alerts", SHUTTERLINE_RELAY_GIVE_UP_S="300")
    relay = harness.start_relay(env, tmp_path / "relay.log")
    try:
        procs.wait_until(
            lambda: "unreachable" in (tmp_path / "relay.log").read_text(), 60, "outage logged"
        )
        relay.send_signal(signal.SIGTERM)
        code = relay.wait(timeout=30)
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(10)
    assert code == 75, (tmp_path / "relay.log").read_text()[-2000:]
    assert len(list(spool.glob("*.alert"))) == 50
    assert not (spool / markers.STATUS).exists()
