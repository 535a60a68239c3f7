"""Alert packets as dicts that follow the Rubin alert schema.

Records come in with schema field names (the APDB uses the same ones, see
``shutterline.association.records``). Every field of the schema is filled: with our value
where we computed one, with null where the field is nullable and we did not; a missing
value for a non-nullable field is an error that names the field. Numbers are coerced to the
Avro type (``float``/``double``/``int``/``long``/``boolean``/``string``), NaN becomes null.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas

from shutterline.alerts import serialize

__all__ = ["CUTOUT_KINDS", "build_alert", "conform", "record_fields"]

#: Keys of the ``cutouts`` mapping and the alert fields they fill.
CUTOUT_KINDS = {
    "difference": "cutoutDifference",
    "science": "cutoutScience",
    "template": "cutoutTemplate",
}


def _float32(value: Any) -> float:
    """The float32 value Avro ``float`` will carry, so the dict equals what a reader gets."""
    return float(np.float32(value))


_CASTS: dict[str, Any] = {
    "float": _float32,
    "double": float,
    "int": int,
    "long": int,
    "boolean": bool,
    "string": str,
    "bytes": bytes,
}

# (name, nullable, cast) per field of a named record.
_Field = tuple[str, bool, Any]


def _named_records(node: Any, found: dict[str, list[dict[str, Any]]]) -> None:
    """Collect every record definition reachable from ``node`` by short name."""
    if isinstance(node, dict):
        if node.get("type") == "record":
            found.setdefault(str(node["name"]).rsplit(".", 1)[-1], node["fields"])
        for value in node.values():
            _named_records(value, found)
    elif isinstance(node, list):
        for value in node:
            _named_records(value, found)


def _field_spec(field: Mapping[str, Any]) -> _Field:
    kind = field["type"]
    nullable = isinstance(kind, list) and "null" in kind
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    cast = _CASTS.get(kind) if isinstance(kind, str) else None
    return str(field["name"]), nullable, cast


@functools.cache
def record_fields(record: str, major: int, minor: int) -> tuple[_Field, ...]:
    """``(name, nullable, cast)`` of each field of ``record`` (e.g. ``"diaSource"``)."""
    schema = serialize.load_schema(major, minor)
    found: dict[str, list[dict[str, Any]]] = {}
    _named_records(schema.packet_schema.definition, found)
    if record not in found:
        raise KeyError(f"alert schema {major}.{minor} has no record {record!r}")
    return tuple(_field_spec(f) for f in found[record])


def conform(record: Mapping[str, Any], name: str, schema: serialize.AlertSchema) -> dict[str, Any]:
    """``record`` as a complete, typed ``name`` record of ``schema``.

    Raises
    ------
    ValueError
        If a non-nullable field has no value.
    """
    out: dict[str, Any] = {}
    get = record.get
    for field, nullable, cast in record_fields(name, schema.major, schema.minor):
        value = get(field)
        # ``value != value`` is true only for NaN (float or numpy float): the null of numbers.
        if value is None or value is pandas.NA or value != value:
            if not nullable:
                raise ValueError(f"{name}.{field} is required by alert schema {schema.version}")
            out[field] = None
        else:
            out[field] = cast(value) if cast is not None else value
    return out


def build_alert(
    dia_source: Mapping[str, Any],
    dia_object: Mapping[str, Any] | None,
    prv_dia_sources: Sequence[Mapping[str, Any]] | None,
    prv_dia_forced_sources: Sequence[Mapping[str, Any]] | None,
    ss_source: Mapping[str, Any] | None,
    cutouts: Mapping[str, bytes | None] | None,
    *,
    schema: serialize.AlertSchema | None = None,
    observation_reason: str | None = None,
    target_name: str | None = None,
) -> dict[str, Any]:
    """One alert packet.

    Parameters
    ----------
    dia_source : mapping
        The triggering source, schema field names. Its ``diaSourceId`` is the alert id.
    dia_object : mapping or None
        Its DIA object after this visit's update (None for a solar-system source).
    prv_dia_sources, prv_dia_forced_sources : sequences of mappings or None
        The object's earlier sources and forced sources (an empty list is sent as null).
    ss_source : mapping or None
        The ssSource row when the source was associated with a known solar-system object;
        its ``mpc_orbits`` key (a mapping, if present) becomes the alert's ``mpc_orbits``.
    cutouts : mapping or None
        ``{"difference": bytes, "science": bytes, "template": bytes}`` FITS cutouts.
    schema : AlertSchema, optional
        Defaults to the latest schema of lsst-alert-packet.

    Returns
    -------
    dict
        Valid against ``schema`` (`lsst.alert.packet.Schema.validate`).
    """
    schema = schema or serialize.load_schema()
    source = conform(dia_source, "diaSource", schema)
    alert: dict[str, Any] = {
        "diaSourceId": source["diaSourceId"],
        "observation_reason": observation_reason,
        "target_name": target_name,
        "diaSource": source,
        "prvDiaSources": [conform(s, "diaSource", schema) for s in prv_dia_sources or ()] or None,
        "prvDiaForcedSources": [
            conform(s, "diaForcedSource", schema) for s in prv_dia_forced_sources or ()
        ]
        or None,
        "diaObject": conform(dia_object, "diaObject", schema) if dia_object else None,
        "ssSource": conform(ss_source, "ssSource", schema) if ss_source else None,
        "mpc_orbits": _mpc_orbits(ss_source, schema),
    }
    for kind, field in CUTOUT_KINDS.items():
        alert[field] = (cutouts or {}).get(kind)
    return alert


def _mpc_orbits(
    ss_source: Mapping[str, Any] | None, schema: serialize.AlertSchema
) -> dict[str, Any] | None:
    """The known object's ``mpc_orbits`` record carried by its ssSource row, if any."""
    orbit = ss_source.get("mpc_orbits") if ss_source else None
    return conform(orbit, "mpc_orbits", schema) if isinstance(orbit, Mapping) else None
