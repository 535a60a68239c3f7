"""A detector's plan written beside the local repository it was copied into, and read back.

The pre-cache (the pod's init container) has just resolved the plan against the central
registry and copied exactly its datasets, under the same ids. It records that plan here, so
the pipeline container (another process) reads its inputs without asking the local registry
the same seven questions again. JSON, no pickles: refs as daf_butler serialises them (with
their dimension records), validity ranges as their nanosecond bounds, patches by sky map
and ``(tract, patch)`` (their geometry is recomputed exactly from the sky map).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from lsst.daf.butler import (
    DataCoordinate,
    DatasetRef,
    DimensionUniverse,
    SerializedDataCoordinate,
    SerializedDatasetRef,
    Timespan,
)

from shutterline import exceptions
from shutterline.butler import selection
from shutterline.skymap import rings

__all__ = ["PLAN_FILE", "dumps", "loads", "read_plan"]

#: In a pre-cached repository: the plan its datasets were copied for.
PLAN_FILE = "plan.json"

#: Bumped when the layout changes; a file of another version is refused, not misread.
VERSION = 1


def _ref(ref: DatasetRef) -> dict[str, Any]:
    return ref.to_simple().model_dump(mode="json", exclude_none=True)


def _calib(match: selection.CalibMatch) -> dict[str, Any]:
    return {"ref": _ref(match.ref), "timespan": match.timespan.model_dump(mode="json")}


def dumps(plan: selection.DetectorPlan, skymap: rings.RingsSkyMap = rings.SKYMAP) -> str:
    """``plan`` as JSON text (``skymap``: the one its template patches are of)."""
    data_id = plan.visit_data_id
    record = {
        "version": VERSION,
        "visit": plan.visit,
        "detector": plan.detector,
        "band": plan.band,
        "physical_filter": plan.physical_filter,
        "mjd": plan.mjd,
        "exptime": plan.exptime,
        "boresight": list(plan.boresight),
        "corners": plan.corners.tolist(),
        "padded": plan.padded.tolist(),
        "visit_data_id": None if data_id is None else data_id.to_simple().model_dump(mode="json"),
        "raw": None if plan.raw is None else _ref(plan.raw),
        "bias": _calib(plan.bias),
        "flat": _calib(plan.flat),
        "skymap": dataclasses.asdict(skymap),
        "templates": [[p.tract, p.patch, _ref(r)] for p, r in plan.templates],
        "refcat": [_ref(r) for r in plan.refcat],
        "orbits": None if plan.orbits is None else _ref(plan.orbits),
        "ss_pieces": [_ref(r) for r in plan.ss_pieces],
    }
    return json.dumps(record, separators=(",", ":"))


def loads(text: str, universe: DimensionUniverse) -> selection.DetectorPlan:
    """The plan `dumps` wrote (``universe``: the repository's dimensions).

    Raises
    ------
    ValueError
        Not a plan of this version, or a field is missing or malformed.
    """
    try:
        record = json.loads(text)
        if record.get("version") != VERSION:
            raise ValueError(f"version {record.get('version')!r}, expected {VERSION}")
        return _plan(record, universe)
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's errors are ValueErrors
        raise ValueError(f"not a readable detector plan: {type(exc).__name__}: {exc}") from exc


def _plan(record: dict[str, Any], universe: DimensionUniverse) -> selection.DetectorPlan:
    def ref(simple: dict[str, Any]) -> DatasetRef:
        return DatasetRef.from_simple(SerializedDatasetRef.model_validate(simple), universe)

    def calib(simple: dict[str, Any]) -> selection.CalibMatch:
        return selection.CalibMatch(ref(simple["ref"]), Timespan.model_validate(simple["timespan"]))

    skymap = rings.RingsSkyMap(**record["skymap"])
    data_id = record["visit_data_id"]
    if data_id is not None:
        data_id = DataCoordinate.from_simple(
            SerializedDataCoordinate.model_validate(data_id), universe
        )
    return selection.DetectorPlan(
        visit=int(record["visit"]),
        detector=int(record["detector"]),
        band=str(record["band"]),
        physical_filter=str(record["physical_filter"]),
        mjd=float(record["mjd"]),
        exptime=float(record["exptime"]),
        boresight=(float(record["boresight"][0]), float(record["boresight"][1])),
        corners=np.asarray(record["corners"], float),
        padded=np.asarray(record["padded"], float),
        visit_data_id=data_id,
        raw=None if record["raw"] is None else ref(record["raw"]),
        bias=calib(record["bias"]),
        flat=calib(record["flat"]),
        templates=[(skymap.patch(t, p), ref(r)) for t, p, r in record["templates"]],
        refcat=[ref(r) for r in record["refcat"]],
        orbits=None if record["orbits"] is None else ref(record["orbits"]),
        ss_pieces=[ref(r) for r in record["ss_pieces"]],
    )


def read_plan(
    local_root: str | Path, universe: DimensionUniverse, visit: int, detector: int
) -> selection.DetectorPlan:
    """The plan a pre-cached repository at ``local_root`` was filled with.

    Raises
    ------
    shutterline.exceptions.MissingInputError
        ``local_root`` has no plan (not made by `shutterline.butler.precache`, or unfinished).
    shutterline.exceptions.PermanentError
        The plan is unreadable, or is of another visit or detector than asked for.
    """
    path = Path(local_root) / PLAN_FILE
    if not path.is_file():
        raise exceptions.MissingInputError(
            "detector plan", {"path": str(path)}, "was the repository pre-cached?"
        )
    try:
        plan = loads(path.read_text(), universe)
    except ValueError as exc:
        raise exceptions.PermanentError(f"{path}: {exc}") from exc
    if (plan.visit, plan.detector) != (visit, detector):
        raise exceptions.PermanentError(
            f"{path} is the plan of visit {plan.visit} detector {plan.detector}, "
            f"not of visit {visit} detector {detector}"
        )
    return plan
