"""All of a detector's alert packets in one call: cutouts, packet dicts, wire bytes.

Typical use in the detector driver, after association (stage 6) and solar-system association
(stage 7)::

    packets = build.build_packets(
        result.alert_inputs(), ss_rows, difference, calexp, template
    )
    associate.commit(result, apdb)
    spool.AlertSpool(directory).write_many(
        [(p.alert_id, p.payload) for p in packets], visit=visit, detector=detector
    )
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from shutterline.alerts import cutouts, packet, serialize
from shutterline.images import exposure as exposure_mod

__all__ = ["AlertInputsLike", "Packet", "build_packets"]


class AlertInputsLike(Protocol):
    """What `shutterline.association.result.AlertInputs` provides."""

    @property
    def dia_source(self) -> Mapping[str, Any]: ...
    @property
    def dia_object(self) -> Mapping[str, Any] | None: ...
    @property
    def prv_dia_sources(self) -> list[dict[str, Any]]: ...
    @property
    def prv_dia_forced_sources(self) -> list[dict[str, Any]]: ...


@dataclasses.dataclass(frozen=True)
class Packet:
    """One alert: its id (the DIA source id), the dict, and its Confluent wire bytes."""

    alert_id: int
    alert: dict[str, Any]
    payload: bytes


def build_packets(
    inputs: Iterable[AlertInputsLike],
    ss_sources: Mapping[int, Mapping[str, Any]],
    difference: exposure_mod.Exposure,
    science: exposure_mod.Exposure,
    template: exposure_mod.Exposure | None,
    *,
    schema: serialize.AlertSchema | None = None,
    cutout_size: int = 30,
) -> list[Packet]:
    """One packet per DIA source, in input order.

    Parameters
    ----------
    inputs : iterable
        ``AssociationResult.alert_inputs()``.
    ss_sources : mapping
        ssSource rows by ``diaSourceId`` (``solarsystem.associate.ss_source_records``).
    difference, science, template : Exposure
        Cutout sources, all on the science pixel grid (the source's ``x, y`` centre every
        cutout). A None template gives null template cutouts.
    schema : AlertSchema, optional
        Latest lsst-alert-packet schema by default.
    cutout_size : int
        Cutout side in pixels.
    """
    schema = schema or serialize.load_schema()
    makers = {
        kind: cutouts.CutoutMaker(exp, cutout_size)
        for kind, exp in (("difference", difference), ("science", science), ("template", template))
        if exp is not None
    }
    packets = []
    for item in inputs:
        source = item.dia_source
        # Centre every cutout on the measured position; the three images share its grid.
        x, y = float(source["x"]), float(source["y"])
        stamps = {kind: m.cutout_at_pixel(x, y) for kind, m in makers.items()}
        alert = packet.build_alert(
            source,
            item.dia_object,
            item.prv_dia_sources,
            item.prv_dia_forced_sources,
            ss_sources.get(int(source["diaSourceId"])),
            stamps,
            schema=schema,
        )
        packets.append(Packet(alert["diaSourceId"], alert, serialize.to_wire(alert, schema)))
    return packets
