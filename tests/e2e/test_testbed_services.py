"""The service half of the test bed answers like the real thing: S3, PostgreSQL, Kafka, OTLP."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.testbed import kafka, otlp, postgres, procs, s3


@pytest.mark.s3
def test_s3_put_get_round_trip(s3_server: s3.S3Server) -> None:
    client = s3_server.client()
    bucket = s3_server.make_bucket("roundtrip")
    payload = np.random.default_rng(7).bytes(100_000)
    client.put_object(Bucket=bucket, Key="raw/visit-1/det-01.fits", Body=payload)
    got = client.get_object(Bucket=bucket, Key="raw/visit-1/det-01.fits")["Body"].read()
    assert got == payload
    listed = client.list_objects_v2(Bucket=bucket, Prefix="raw/")
    assert [o["Key"] for o in listed["Contents"]] == ["raw/visit-1/det-01.fits"]


@pytest.mark.s3
def test_s3_missing_key_is_reported(s3_server: s3.S3Server) -> None:
    client = s3_server.client()
    bucket = s3_server.make_bucket("missing")
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=bucket, Key="nothing-here")


@pytest.mark.s3
def test_s3_multipart_upload(s3_server: s3.S3Server) -> None:
    client = s3_server.client()
    bucket = s3_server.make_bucket("multipart")
    rng = np.random.default_rng(11)
    parts = [rng.bytes(5 * 1024 * 1024), rng.bytes(5 * 1024 * 1024), rng.bytes(1234)]
    upload = client.create_multipart_upload(Bucket=bucket, Key="big.bin")
    etags = []
    for number, part in enumerate(parts, start=1):
        answer = client.upload_part(
            Bucket=bucket, Key="big.bin", UploadId=upload["UploadId"], PartNumber=number, Body=part
        )
        etags.append({"ETag": answer["ETag"], "PartNumber": number})
    client.complete_multipart_upload(
        Bucket=bucket, Key="big.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": etags}
    )
    got = client.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert got == b"".join(parts)


@pytest.mark.s3
def test_s3_env_points_at_the_server(s3_server: s3.S3Server) -> None:
    env = s3_server.env()
    assert env["S3_ENDPOINT_URL"] == s3_server.endpoint_url
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert s3_server.make_bucket("a") != s3_server.make_bucket("a")


@pytest.mark.postgres
def test_postgres_create_database_and_table(postgres_server: postgres.PostgresServer) -> None:
    import psycopg2

    url = postgres_server.create_database("apdb")
    assert url.startswith(f"postgresql+psycopg2://{postgres_server.user}@127.0.0.1:")
    name = url.rsplit("/", 1)[1]
    with psycopg2.connect(postgres_server.dsn(name)) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE alerts (id bigint PRIMARY KEY, flux double precision)")
        cursor.executemany("INSERT INTO alerts VALUES (%s, %s)", [(1, 2.5), (2, -1.0)])
        cursor.execute("SELECT sum(flux) FROM alerts")
        assert cursor.fetchone() == (1.5,)
    other = postgres_server.create_database("apdb")
    assert other != url


@pytest.mark.postgres
def test_postgres_listens_on_loopback_only(postgres_server: postgres.PostgresServer) -> None:
    import psycopg2

    with psycopg2.connect(postgres_server.dsn()) as conn, conn.cursor() as cursor:
        cursor.execute("SHOW listen_addresses")
        assert cursor.fetchone() == ("127.0.0.1",)


@pytest.mark.kafka
def test_kafka_produce_consume(kafka_broker: kafka.KafkaBroker) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    producer.produce(topic, key=b"visit-1", value=b"alert-payload")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap,
            "group.id": "testbed",
            "enable.auto.commit": False,
        }
    )
    try:
        # Assigning the partition directly skips the group rebalance (seconds) of subscribe().
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        message = None
        for _ in range(60):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None
        assert (message.key(), message.value()) == (b"visit-1", b"alert-payload")
    finally:
        consumer.close()


def _send_two_spans(endpoint: str) -> str:
    """Export a root span and one child to ``endpoint`` over OTLP/HTTP; return the trace id."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "testbed-check"}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.e2e")
    with (
        tracer.start_as_current_span("visit") as root,
        tracer.start_as_current_span("detector", attributes={"detector": 7, "band": "g"}),
    ):
        pass
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def _check_two_spans(receiver: otlp.OtlpReceiver | otlp.JaegerReceiver, trace_id: str) -> None:
    spans = receiver.spans(trace_id)
    for _ in range(50):  # both spans were exported, but may be stored a moment apart
        if len(spans) == 2:
            break
        time.sleep(0.1)
        spans = receiver.spans(trace_id)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"visit", "detector"}
    assert {s["trace_id"] for s in spans} == {trace_id}
    assert by_name["detector"]["parent_span_id"] == by_name["visit"]["span_id"]
    assert by_name["visit"]["parent_span_id"] is None
    assert by_name["detector"]["attributes"] == {"detector": 7, "band": "g"}
    assert by_name["visit"]["service_name"] == "testbed-check"
    visit, detector = by_name["visit"], by_name["detector"]
    assert visit["start_time_unix_nano"] <= detector["start_time_unix_nano"]
    assert detector["end_time_unix_nano"] <= visit["end_time_unix_nano"]
    assert abs(visit["start_time_unix_nano"] / 1e9 - time.time()) < 300


def test_span_round_trip_through_jaeger(otlp_receiver: otlp.JaegerReceiver) -> None:
    trace_id = _send_two_spans(otlp_receiver.endpoint)
    _check_two_spans(otlp_receiver, trace_id)
    assert "testbed-check" in otlp_receiver.services()
    assert trace_id in {s["trace_id"] for s in otlp_receiver.spans()}
    assert otlp_receiver.spans("0" * 31 + "1", timeout=0.5) == []


def test_span_round_trip_through_local_receiver(tmp_path: Path) -> None:
    receiver = otlp.start_local(tmp_path)
    try:
        trace_id = _send_two_spans(receiver.endpoint)
        _check_two_spans(receiver, trace_id)
        assert len(receiver.spans()) == 2
    finally:
        receiver.stop()


def test_local_receiver_reads_otlp_json_with_hex_ids(tmp_path: Path) -> None:
    import json
    import urllib.request

    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "ingest",
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [{"key": "n", "value": {"intValue": "3"}}],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    receiver = otlp.start_local(tmp_path)
    try:
        request = urllib.request.Request(
            f"{receiver.endpoint}/v1/traces",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        (span,) = receiver.spans(trace_id)
    finally:
        receiver.stop()
    assert (span["span_id"], span["name"], span["service_name"]) == (span_id, "ingest", "json")
    assert span["attributes"] == {"n": 3}
    assert span["end_time_unix_nano"] - span["start_time_unix_nano"] == 1_000_000_000


def test_start_failure_names_component_and_log(tmp_path: Path) -> None:
    log = tmp_path / "broken.log"
    process = procs.ManagedProcess("broken", ["sh", "-c", "echo cannot bind; exit 3"], log)
    process.start()
    with pytest.raises(procs.ComponentError, match=r"(?s)broken exited with code 3.*cannot bind"):
        procs.wait_process_ready(process, lambda: False, 10, "broken")
