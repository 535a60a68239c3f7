"""Avro encoding of alerts: the Confluent wire format and Avro container files.

Confluent wire format: one magic byte 0, the schema id as a 4-byte big-endian unsigned
integer, then the Avro binary encoding of the record without any container framing. The
schema id is ``major * 100 + minor`` of the Rubin alert schema (11.1 -> 1101), which is how
Rubin's own alert stream numbers its schemas in the registry.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import struct
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import fastavro
from lsst.alert import packet as alert_packet

__all__ = [
    "MAGIC_BYTE",
    "AlertSchema",
    "from_wire",
    "load_schema",
    "read_avro_file",
    "schema_id",
    "to_wire",
    "write_avro_file",
]

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


def schema_id(major: int, minor: int) -> int:
    """The Confluent registry id of alert schema ``major.minor``: ``major * 100 + minor``."""
    return major * 100 + minor


@dataclasses.dataclass(frozen=True, eq=False)
class AlertSchema:
    """One version of the Rubin alert schema, parsed once for fast encoding.

    Attributes
    ----------
    major, minor : int
        Schema version.
    packet_schema : lsst.alert.packet.Schema
        lsst-alert-packet's own object (its ``validate`` is the reference validation).
    parsed : dict
        The definition parsed by ``fastavro.parse_schema`` (reused for every record).
    """

    major: int
    minor: int
    packet_schema: alert_packet.Schema
    parsed: Any

    @functools.cached_property
    def union_branches(self) -> dict[str, str]:
        """Top-level nullable fields -> the name of their non-null branch.

        Used to write unions in fastavro's tuple notation, which skips the deep validation
        fastavro otherwise runs to pick a branch (most of the encoding time for records and
        arrays of records).
        """
        out: dict[str, str] = {}
        for field in self.parsed["fields"]:
            kind = field["type"]
            if isinstance(kind, list) and "null" in kind:
                branch = next(k for k in kind if k != "null")
                out[field["name"]] = (
                    branch["name"]
                    if "name" in branch
                    else branch.get("type", branch)
                    if isinstance(branch, dict)
                    else branch
                )
        return out

    @property
    def id(self) -> int:
        """Confluent schema id."""
        return schema_id(self.major, self.minor)

    @property
    def version(self) -> str:
        """``"major.minor"``."""
        return f"{self.major}.{self.minor}"


@functools.cache
def load_schema(major: int | None = None, minor: int | None = None) -> AlertSchema:
    """The alert schema ``major.minor`` from lsst-alert-packet, the latest by default."""
    if major is None or minor is None:
        major, minor = alert_packet.get_latest_schema_version()
    uri = alert_packet.get_schema_uri(major, minor).join(f"lsst.v{major}_{minor}.alert.avsc")
    packet_schema = alert_packet.Schema.from_uri(uri)
    parsed = fastavro.parse_schema(packet_schema.definition)
    return AlertSchema(major, minor, packet_schema, parsed)


def to_wire(alert: Mapping[str, Any], schema: AlertSchema) -> bytes:
    """Confluent wire-format bytes of one alert (5-byte header, then Avro binary)."""
    buffer = io.BytesIO()
    buffer.write(_HEADER.pack(MAGIC_BYTE, schema.id))
    fastavro.schemaless_writer(buffer, schema.parsed, _tagged(alert, schema))
    return buffer.getvalue()


def _tagged(alert: Mapping[str, Any], schema: AlertSchema) -> dict[str, Any]:
    """A shallow copy with the heavy unions in tuple notation (same bytes, less work)."""
    out = dict(alert)
    for name, branch in schema.union_branches.items():
        value = out.get(name)
        if value is not None and not isinstance(value, tuple):
            out[name] = (branch, value)
    return out


def from_wire(payload: bytes, schema: AlertSchema) -> dict[str, Any]:
    """Decode Confluent wire-format bytes written with ``schema``.

    Raises
    ------
    ValueError
        If the magic byte is not 0 or the schema id is not ``schema``'s.
    """
    if len(payload) < _HEADER.size:
        raise ValueError(f"alert payload of {len(payload)} bytes is shorter than the header")
    magic, sid = _HEADER.unpack_from(payload)
    if magic != MAGIC_BYTE:
        raise ValueError(f"not Confluent wire format: magic byte {magic}, expected 0")
    if sid != schema.id:
        raise ValueError(f"alert written with schema id {sid}, reader has {schema.id}")
    record = fastavro.schemaless_reader(io.BytesIO(payload[_HEADER.size :]), schema.parsed)
    return dict(record)  # type: ignore[arg-type]


def write_avro_file(
    path: str | os.PathLike[str], alerts: Iterable[Mapping[str, Any]], schema: AlertSchema
) -> None:
    """Write alerts to an Avro container file (schema embedded), atomically.

    The file appears under its final name only when complete (temporary name, fsync,
    rename), so a reader never sees half a file.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fastavro.writer(fh, schema.parsed, (_tagged(a, schema) for a in alerts))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_avro_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every alert of an Avro container file (with the schema it embeds)."""
    with open(path, "rb") as fh:
        return [dict(r) for r in fastavro.reader(fh)]  # type: ignore[arg-type]
