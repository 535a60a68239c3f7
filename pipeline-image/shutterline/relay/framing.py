"""Check one spooled packet: Confluent framing and an Avro body that decodes with the schema.

A packet that fails is corrupt: the relay moves it aside instead of publishing it, so an
alert broker never receives bytes its deserializer cannot read. The body is read with a
reader schema that keeps only ``diaSourceId`` and the record's last field: fastavro still
walks every field of the writer's schema (each length, union branch and varint must be
there and in range), but skips values instead of building them, at less than half the cost
of a full decode (0.19 ms against 0.42 ms for an 80 KB alert). A skip past the end of the
bytes goes unnoticed, so the last field is really read (a truncated packet fails there)
and the record must end exactly at the end of the file. What skipping does not check is
the UTF-8 of string values.
"""

from __future__ import annotations

import functools
import io
import struct
from typing import Any

import fastavro

from shutterline.alerts import serialize

__all__ = ["CorruptPacketError", "check_packet"]

_HEADER = struct.Struct(">bI")


class CorruptPacketError(ValueError):
    """A spool file is not a Confluent-framed alert of the relay's schema."""


@functools.cache
def _id_reader(schema: serialize.AlertSchema) -> Any:
    """Reader schema of ``schema``'s record with its ``diaSourceId`` and last field only."""
    name = schema.parsed["name"]
    last = schema.parsed["fields"][-1]
    fields = [{"name": "diaSourceId", "type": "long"}]
    if last["name"] != "diaSourceId":
        fields.append({"name": last["name"], "type": last["type"]})
    return fastavro.parse_schema({"type": "record", "name": name, "fields": fields})


def check_packet(payload: bytes, schema: serialize.AlertSchema) -> int:
    """The alert id (``diaSourceId``) of a well-formed packet.

    Parameters
    ----------
    payload
        The file's bytes: magic byte 0, the 4-byte big-endian schema id, the Avro body.
    schema
        The schema the relay publishes; its registry id must be the packet's.

    Raises
    ------
    CorruptPacketError
        Naming what is wrong: short header, magic byte, schema id, an Avro body that does not
        decode, or bytes left over after the record.
    """
    if len(payload) <= _HEADER.size:
        raise CorruptPacketError(f"{len(payload)} bytes: shorter than a framed packet")
    magic, schema_id = _HEADER.unpack_from(payload)
    if magic != serialize.MAGIC_BYTE:
        raise CorruptPacketError(f"magic byte {magic}, not 0 (not Confluent wire format)")
    if schema_id != schema.id:
        raise CorruptPacketError(f"schema id {schema_id}, the relay publishes {schema.id}")
    body = io.BytesIO(payload)
    body.seek(_HEADER.size)
    try:
        record = fastavro.schemaless_reader(body, schema.parsed, _id_reader(schema))
    except Exception as exc:  # fastavro raises EOFError, ValueError, UnicodeError, ...
        detail = f"{type(exc).__name__}: {exc}"
        raise CorruptPacketError(f"Avro body does not decode: {detail}") from None
    if body.tell() != len(payload):
        raise CorruptPacketError(f"{len(payload) - body.tell()} bytes after the Avro record")
    if not isinstance(record, dict) or not isinstance(record.get("diaSourceId"), int):
        raise CorruptPacketError("record has no integer diaSourceId")
    return int(record["diaSourceId"])
