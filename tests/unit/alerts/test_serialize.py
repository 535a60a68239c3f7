"""Confluent wire format and Avro container files."""

from __future__ import annotations

import io
import json

import fastavro
import pytest
from lsst.alert import packet as alert_packet

from shutterline.alerts import packet, serialize


@pytest.fixture(scope="module")
def sample_alert() -> dict:
    """lsst-alert-packet's own sample alert of the latest schema, completed to every field."""
    major, minor = alert_packet.get_latest_schema_version()
    root = alert_packet.get_schema_root()
    raw = json.loads((root / str(major) / str(minor) / "sample_data" / "alert.json").read_text())
    return packet.build_alert(
        raw["diaSource"], raw["diaObject"], raw["prvDiaSources"], None, None, None
    )


def test_schema_id_is_major_times_100_plus_minor():
    assert serialize.schema_id(11, 1) == 1101
    schema = serialize.load_schema()
    assert (schema.major, schema.minor) == alert_packet.get_latest_schema_version()


def test_wire_bytes_equal_plain_fastavro_encoding(sample_alert):
    schema = serialize.load_schema()
    plain = io.BytesIO()
    fastavro.schemaless_writer(plain, schema.packet_schema.definition, sample_alert)
    wire = serialize.to_wire(sample_alert, schema)
    assert wire[:5] == b"\x00\x00\x00\x04\x4d"  # magic 0, id 1101
    assert wire[5:] == plain.getvalue()
    assert serialize.from_wire(wire, schema) == sample_alert


def test_from_wire_rejects_wrong_header(sample_alert):
    schema = serialize.load_schema()
    wire = serialize.to_wire(sample_alert, schema)
    with pytest.raises(ValueError, match="magic byte 1"):
        serialize.from_wire(b"\x01" + wire[1:], schema)
    with pytest.raises(ValueError, match="schema id 1100"):
        serialize.from_wire(wire[:1] + (1100).to_bytes(4, "big") + wire[5:], schema)
    with pytest.raises(ValueError, match="shorter than the header"):
        serialize.from_wire(wire[:3], schema)


def test_avro_file_is_readable_by_lsst_alert_packet(sample_alert, tmp_path):
    schema = serialize.load_schema()
    alerts = [dict(sample_alert, diaSourceId=i) for i in range(3)]
    path = tmp_path / "alerts.avro"
    serialize.write_avro_file(path, alerts, schema)
    assert serialize.read_avro_file(path) == alerts
    with open(path, "rb") as fh:
        _, records = schema.packet_schema.retrieve_alerts(fh)
        assert [r["diaSourceId"] for r in records] == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["alerts.avro"]  # no temporary left


def test_avro_file_failure_leaves_nothing(tmp_path):
    schema = serialize.load_schema()
    with pytest.raises(ValueError):
        serialize.write_avro_file(tmp_path / "bad.avro", [{"diaSourceId": 1}], schema)
    assert list(tmp_path.iterdir()) == []
