"""The test packets are the bytes the pipeline's serializer writes, at about 80 KB."""

from __future__ import annotations

from shutterline.alerts import serialize
from tests.unit.relay import packets


def test_patched_packets_equal_the_serializer_output():
    schema = serialize.load_schema()
    for alert_id in (packets.BASE_ID, packets.BASE_ID + 7, packets.BASE_ID + 123_456):
        wire = packets.payload(alert_id)
        assert wire == serialize.to_wire(packets.alert(alert_id), schema)
        decoded = serialize.from_wire(wire, schema)
        assert decoded["diaSourceId"] == decoded["diaSource"]["diaSourceId"] == alert_id
        assert schema.packet_schema.validate(decoded)
    assert 75_000 < len(packets.payload(packets.BASE_ID)) < 85_000
