"""The relay's view of the spool: finished packets only, names parsed, quarantine kept."""

from __future__ import annotations

import errno
import zlib

import pytest

from shutterline.alerts import serialize
from shutterline.alerts import spool as alert_spool
from shutterline.relay import framing, markers, spoolfiles
from tests.unit.relay import packets


def test_scan_sees_finished_packets_only(tmp_path):
    writer = alert_spool.AlertSpool(tmp_path, fsync=False)
    writer.write(12, b"x", visit=100007, detector=7)
    writer.write(13, b"y")
    (tmp_path / ".100007_7_14.alert.ab12cd34.tmp").write_bytes(b"half")
    markers.write_done(tmp_path, 100007, 7, "succeeded", 2)
    assert spoolfiles.scan_names(tmp_path) == ["100007_7_12.alert", "13.alert"]
    packet = spoolfiles.read_packet(tmp_path, "100007_7_12.alert")
    assert packet is not None
    assert (packet.visit, packet.detector, packet.name_id) == (100007, 7, 12)
    assert packet.detector_key == (100007, 7) and packet.payload == b"x"
    bare = spoolfiles.read_packet(tmp_path, "13.alert")
    assert bare is not None and bare.detector_key is None and bare.name_id == 13
    assert spoolfiles.read_packet(tmp_path, "99.alert") is None
    assert markers.done_markers(tmp_path) == {(100007, 7): tmp_path / "100007_7.done"}


def test_quarantine_moves_the_file_aside_with_its_reason(tmp_path):
    (tmp_path / "5.alert").write_bytes(b"junk")
    target = spoolfiles.quarantine(tmp_path, "5.alert", "magic byte 106, not 0")
    assert target == tmp_path / "quarantine" / "5.alert" and target.read_bytes() == b"junk"
    assert "magic byte 106" in (tmp_path / "quarantine" / "5.alert.reason").read_text()
    assert spoolfiles.scan_names(tmp_path) == []


def test_the_writer_records_each_packets_checksum_for_the_relay(tmp_path):
    writer = alert_spool.AlertSpool(tmp_path, fsync=False)
    writer.write(12, b"first", visit=100007, detector=7)
    writer.write_many([(13, b"second"), (14, b"third")], visit=100007, detector=7)
    (tmp_path / "100007_7_15.alert").write_bytes(b"by another writer")
    checksums = {
        name: spoolfiles.read_packet(tmp_path, name).checksum  # type: ignore[union-attr]
        for name in spoolfiles.scan_names(tmp_path)
    }
    assert checksums == {
        "100007_7_12.alert": zlib.crc32(b"first"),
        "100007_7_13.alert": zlib.crc32(b"second"),
        "100007_7_14.alert": zlib.crc32(b"third"),
        "100007_7_15.alert": None,
    }


def test_without_user_attributes_packets_are_written_and_the_relay_decodes_them(
    tmp_path, monkeypatch
):
    """A file system that refuses user xattrs (NFS, some overlays; injected here): the
    writer stops asking after the first refusal, the packets still land, and the relay,
    finding no checksum, checks each body by decoding it, so corruption is still caught."""
    refusals = []

    def refuse(*args, **kwargs):
        refusals.append(args[1])
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(alert_spool.os, "setxattr", refuse)
    monkeypatch.setattr(spoolfiles.os, "getxattr", refuse)
    good = packets.payload(packets.BASE_ID + 1)
    writer = alert_spool.AlertSpool(tmp_path, fsync=False)
    writer.write(packets.BASE_ID + 1, good, visit=100007, detector=7)
    writer.write_many([(packets.BASE_ID + 2, good[:-100])], visit=100007, detector=7)
    assert len(refusals) == 1  # asked once, then never again
    schema = serialize.load_schema()
    read = {n: spoolfiles.read_packet(tmp_path, n) for n in spoolfiles.scan_names(tmp_path)}
    assert all(p is not None and p.checksum is None for p in read.values())
    first, second = (read[f"100007_7_{packets.BASE_ID + i}.alert"] for i in (1, 2))
    assert framing.check_packet(first.payload, schema, first.checksum) == packets.BASE_ID + 1
    with pytest.raises(framing.CorruptPacketError, match="Avro body does not decode"):
        framing.check_packet(second.payload, schema, second.checksum)
