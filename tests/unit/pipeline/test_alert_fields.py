"""Every alert of the small night carries every field the pipeline has data for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shutterline.alerts import serialize
from shutterline.pipeline import visit

pytestmark = pytest.mark.slow

#: Fields with no data in this pipeline: no deblender (parent), no withdrawal, and a trail
#: algorithm that is neither of the schema's two codes.
NO_DATA = {"parentDiaSourceId", "timeWithdrawnMjdTai", "trailAlgorithm"}
DIPOLE = {"dipoleMeanFlux", "dipoleMeanFluxErr", "dipoleFluxDiff", "dipoleFluxDiffErr",
          "dipoleLength", "dipoleAngle", "dipoleChi2"}  # fmt: skip
TRAIL = {"trailFlux", "trailFluxErr", "trailRa", "trailRaErr", "trailDec", "trailDecErr",
         "trailLength", "trailLengthErr", "trailAngle", "trailAngleErr", "trailChi2"}  # fmt: skip
SHAPE = {"ixx", "iyy", "ixy", "extendedness"}


def _allowed_nulls(src: dict[str, Any]) -> set[str]:
    """The fields a source may leave null, and why (its own flags say so)."""
    allowed = set(NO_DATA)
    if not src["dipoleFitAttempted"]:
        allowed |= DIPOLE
    if src["trail_flag"]:  # the trailed fit failed
        allowed |= TRAIL
    if src["shape_flag"]:  # moments not measurable
        allowed |= SHAPE
    if src["ssObjectId"] is None or src["diaObjectId"] is not None:
        allowed |= {"ssObjectId"}
    if src["ssObjectId"] is not None:
        allowed |= {"diaObjectId"}
    return allowed


def test_no_alert_field_with_data_is_null(small_night: Any, tmp_path: Path) -> None:
    settings = small_night.settings(tmp_path)
    schema = serialize.load_schema()
    alerts = []
    for entry in small_night.visits:
        reports = visit.run_visit(settings, entry["visit"], entry["detectors"], jobs=1)
        assert all(r.status == "succeeded" for r in reports), [r.reason for r in reports]
        paths = [p for r in reports for p in r.alert_paths]
        alerts += [serialize.from_wire(Path(p).read_bytes(), schema) for p in paths]
    assert len(alerts) >= 10
    problems: dict[str, int] = {}
    for alert in alerts:
        src = alert["diaSource"]
        for name in {k for k, v in src.items() if v is None} - _allowed_nulls(src):
            problems[name] = problems.get(name, 0) + 1
        assert src["reliabilityVersion"] and src["band"] in "ugrizy"
        obj = alert["diaObject"]
        for name in ("raErr", "decErr", "ra_dec_Cov") if obj else ():
            if obj[name] is None:
                problems[f"diaObject.{name}"] = problems.get(f"diaObject.{name}", 0) + 1
        assert alert["cutoutDifference"] and alert["cutoutScience"] and alert["cutoutTemplate"]
    assert problems == {}, f"null on some of {len(alerts)} alerts: {problems}"
    # The trail fit and, where kept, the dipole fit do run on real data.
    assert sum(a["diaSource"]["trailLength"] is not None for a in alerts) >= 0.9 * len(alerts)
