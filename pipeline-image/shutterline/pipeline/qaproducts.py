"""The analysis pod's repository side: read a detector's exports, write the QA records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from astropy.table import Table, vstack
from lsst.daf.butler import Butler, MissingCollectionError

from shutterline.analysis import records as qa_records
from shutterline.butler import datasettypes, names, refcat
from shutterline.images import exposure as exposure_mod

__all__ = ["query_visit_records", "read_products", "register", "write_records"]

#: Which `DetectorProducts` field each exported dataset type fills.
_FIELDS = {
    names.CALEXP: "calexp",
    names.SRC: "src",
    names.DIFFERENCE_IMAGE: "difference",
    names.DIA_SOURCE: "dia",
}


def register(butler: Butler) -> None:
    """Register ``qa`` and ``qaVisit`` (idempotent; a repository made before they existed)."""
    for dataset_type in datasettypes.dataset_types(butler.dimensions):
        if dataset_type.name in (names.QA, names.QA_VISIT):
            butler.registry.registerDatasetType(dataset_type)


def _exists(butler: Butler, collection: str) -> bool:
    try:
        butler.collections.get_info(collection)
    except MissingCollectionError:
        return False
    return True


def _get(butler: Butler, name: str, data_id: Mapping[str, Any], run: str) -> Any:
    refs = butler.query_datasets(name, collections=run, data_id=data_id, explain=False)
    return butler.get(refs[0]) if refs else None


def _corners(exposure: exposure_mod.Exposure, wcs: Any) -> np.ndarray:
    ny, nx = exposure.shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = wcs.all_pix2world(x, y, 0)
    return np.column_stack([ra, dec])


def _refcat(butler: Butler, exposure: exposure_mod.Exposure) -> Table | None:
    """The reference stars in the shards under ``exposure``'s footprint (``None``: none)."""
    if exposure.wcs is None:
        return None
    # Only stars on the detector can match its sources: no margin.
    refs = refcat.shard_refs(butler, _corners(exposure, exposure.wcs))
    tables = [butler.get(r) for r in refs]
    return vstack(tables, join_type="exact") if tables else None


def read_products(butler: Butler, visit: int, detector: int) -> qa_records.DetectorProducts:
    """The exported products of one detector and its reference stars (missing: ``None``)."""
    data_id = {"instrument": names.INSTRUMENT, "visit": visit, "detector": detector}
    out = qa_records.DetectorProducts(visit, detector)
    run = names.visit_run(visit)
    if not _exists(butler, run):
        return out
    for name, field in _FIELDS.items():
        if butler.registry.queryDatasetTypes(name):
            setattr(out, field, _get(butler, name, data_id, run))
    if out.calexp is not None:
        out.refcat = _refcat(butler, out.calexp)
    return out


def write_records(
    butler: Butler,
    visit: int,
    detectors: Sequence[Mapping[str, Any]],
    visit_record: Mapping[str, Any],
) -> str:
    """Put the records into the visit's QA RUN (replacing an earlier analysis); the URI of
    the ``qaVisit`` record."""
    run = names.qa_run(visit)
    if _exists(butler, run):
        butler.removeRuns([run])
    butler.registry.registerRun(run)
    for record in detectors:
        data_id = {"instrument": names.INSTRUMENT, "visit": visit, "detector": record["detector"]}
        butler.put(dict(record), names.QA, data_id, run=run)
    ref = butler.put(
        dict(visit_record),
        names.QA_VISIT,
        {"instrument": names.INSTRUMENT, "visit": visit},
        run=run,
    )
    return str(butler.getURI(ref))


def query_visit_records(butler: Butler, night: str | None = None) -> list[dict[str, Any]]:
    """Every ``qaVisit`` record in the repository (of observing ``night``, if given), with
    its detectors' ``qa`` records under ``"detectorRecords"``, in time order."""
    runs = list(butler.collections.query(f"{names.QA_COLLECTION}/*"))
    if not runs or not butler.registry.queryDatasetTypes(names.QA_VISIT):
        return []
    out = []
    for ref in butler.query_datasets(names.QA_VISIT, collections=runs, explain=False, limit=None):
        record = dict(butler.get(ref))
        if night is not None and record.get("night") != night:
            continue
        dets = butler.query_datasets(
            names.QA, collections=ref.run, data_id={"visit": record["visit"]}, explain=False
        )
        record["detectorRecords"] = sorted(
            (dict(butler.get(r)) for r in dets), key=lambda r: int(r["detector"])
        )
        out.append(record)
    return sorted(out, key=lambda r: (r.get("mjd") or 0.0, r["visit"]))
