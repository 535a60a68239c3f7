"""Real alert packets for the relay tests and benchmark, about 80 KB each.

One packet is built by the pipeline's own alert code (`shutterline.alerts.build`): a DIA
source with ten earlier detections and 20-pixel science, template and difference cutouts,
which comes to 79 KB in the Confluent wire format, the size of a Rubin alert. Tens of
thousands of distinct alerts are made from it by giving it another ``diaSourceId``: the
encoding of the two id fields (top level and ``diaSource``) is patched in place, which gives
exactly the bytes `serialize.to_wire` writes for that id (``test_packets.py`` checks it) at
a hundredth of the cost.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from shutterline.alerts import build, serialize
from shutterline.association import result
from tests.unit.association import synthetic

__all__ = ["BASE_ID", "alert", "ids", "payload", "payloads"]

#: Ids from here on encode to varints of one length (6 bytes up to BASE_ID + 2**39).
BASE_ID = 1 << 40


def _source(alert_id: int, ra: float, dec: float) -> dict[str, Any]:
    return {
        "diaSourceId": alert_id,
        "visit": 100007,
        "detector": 7,
        "midpointMjdTai": 60000.5,
        "ra": ra,
        "dec": dec,
        "x": 100.0,
        "y": 100.0,
        "psfNdata": 0,
        "trailNdata": 0,
        "dipoleNdata": 0,
        "timeProcessedMjdTai": 60000.6,
        "bboxSize": 11,
        "psfFlux": 1234.5,
    }


@functools.cache
def _template() -> build.Packet:
    x, y = np.array([100.0]), np.array([100.0])
    exposure = synthetic.make_exposure((200, 200), x, y, np.array([2e3]), seed=3)
    assert exposure.wcs is not None
    ra, dec = exposure.wcs.all_pix2world(x, y, 0)
    source = _source(BASE_ID, float(ra[0]), float(dec[0]))
    history = [dict(source, diaSourceId=1000 + i, midpointMjdTai=59990.5 + i) for i in range(10)]
    inputs = [result.AlertInputs(source, None, history, [])]
    return build.build_packets(inputs, {}, exposure, exposure, exposure, cutout_size=20)[0]


def alert(alert_id: int) -> dict[str, Any]:
    """The alert dict with id ``alert_id`` (a deep copy: the caller may change it)."""
    out = copy.deepcopy(_template().alert)
    out["diaSourceId"] = alert_id
    out["diaSource"]["diaSourceId"] = alert_id
    return out


def _varint(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte, zigzag = zigzag & 0x7F, zigzag >> 7
        out.append(byte | (0x80 if zigzag else 0))
        if not zigzag:
            return bytes(out)


@functools.cache
def _layout() -> tuple[bytes, tuple[int, ...], int]:
    """The template's bytes, where its id varints start, and their length."""
    schema = serialize.load_schema()
    first = serialize.to_wire(alert(BASE_ID), schema)
    second = serialize.to_wire(alert(BASE_ID + 1), schema)
    starts = tuple(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)
    return first, starts, len(_varint(BASE_ID))


def payload(alert_id: int) -> bytes:
    """Confluent wire-format bytes of ``alert(alert_id)``."""
    if not BASE_ID <= alert_id < BASE_ID + (1 << 39):
        raise ValueError(f"alert id {alert_id} outside the patchable range")
    template, starts, width = _layout()
    out = bytearray(template)
    code = _varint(alert_id)
    for start in starts:
        out[start : start + width] = code
    return bytes(out)


def ids(n: int, first: int = 0) -> list[int]:
    """``n`` consecutive alert ids."""
    return [BASE_ID + first + i for i in range(n)]


def payloads(alert_ids: list[int]) -> Iterator[tuple[int, bytes]]:
    """``(id, bytes)`` for each id, ready for `AlertSpool.write_many`."""
    for alert_id in alert_ids:
        yield alert_id, payload(alert_id)
