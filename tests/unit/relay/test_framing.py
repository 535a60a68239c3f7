"""A packet is published only if its framing and Avro body are right; each fault is named."""

from __future__ import annotations

import struct
import zlib

import pytest

from shutterline.alerts import serialize
from shutterline.relay import framing
from tests.unit.relay import packets

SCHEMA = serialize.load_schema()
GOOD = packets.payload(packets.BASE_ID + 5)


def test_a_well_formed_packet_gives_its_alert_id():
    assert framing.check_packet(GOOD, SCHEMA) == packets.BASE_ID + 5


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"", "shorter than a framed packet"),
        (b"\x00\x00\x00\x04\x4d", "shorter than a framed packet"),
        (b"\x01" + GOOD[1:], "magic byte 1"),
        (GOOD[:1] + struct.pack(">I", 701) + GOOD[5:], "schema id 701, the relay publishes 1101"),
        (GOOD[: len(GOOD) // 2], "Avro body does not decode"),
        (GOOD[:-1000], "Avro body does not decode"),
        (GOOD[:-1], "Avro body does not decode"),
        (GOOD + b"\x00\x01", "2 bytes after the Avro record"),
        (b"\x00" + struct.pack(">I", 1101) + b"\xff" * 64, "Avro body does not decode"),
    ],
)
def test_corrupt_packets_are_named(payload, says):
    with pytest.raises(framing.CorruptPacketError, match=says):
        framing.check_packet(payload, SCHEMA)


def test_a_checksum_the_bytes_still_have_spares_the_decode_and_a_changed_one_is_named():
    # The header's id is read, the body not decoded: the bytes are the writer's own.
    assert framing.check_packet(GOOD, SCHEMA, zlib.crc32(GOOD)) == packets.BASE_ID + 5
    # A byte changed inside a cutout still decodes, but is not what the writer wrote.
    flipped = bytearray(GOOD)
    flipped[len(GOOD) // 2] ^= 0x01
    framing.check_packet(bytes(flipped), SCHEMA)  # the Avro alone cannot see it
    with pytest.raises(framing.CorruptPacketError, match=r"checksum .*the writer recorded"):
        framing.check_packet(bytes(flipped), SCHEMA, zlib.crc32(GOOD))
    # A body whose checksum matches but does not decode: only the full check sees it.
    garbage = GOOD[:11] + b"\xff" * 64
    assert framing.check_packet(garbage, SCHEMA, zlib.crc32(garbage)) == packets.BASE_ID + 5
    with pytest.raises(framing.CorruptPacketError, match="Avro body does not decode"):
        framing.check_packet(garbage, SCHEMA, zlib.crc32(garbage), full=True)
