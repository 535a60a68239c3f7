"""One check that two `DetectorInputs` hold the same inputs, for every test that loads a
detector's inputs two ways (pre-cached or direct, through a plan or not), and one that two
plans are the same."""

from __future__ import annotations

import numpy as np

from shutterline.butler import inputs, selection

__all__ = ["assert_same_inputs", "assert_same_plan"]


def _patches(d: inputs.DetectorInputs) -> list[tuple[int, int, tuple[int, int]]]:
    return [(p.tract, p.patch, p.shape) for p, _ in d.templates]


def assert_same_inputs(a: inputs.DetectorInputs, b: inputs.DetectorInputs) -> None:
    """Every input of ``a`` equals ``b``'s: metadata, footprint, raw, calibrations (image and
    mask), template patches (pixels and variance), reference stars and orbits, in order."""
    assert (a.visit, a.detector, a.band, a.mjd, a.exptime) == (
        b.visit,
        b.detector,
        b.band,
        b.mjd,
        b.exptime,
    )
    np.testing.assert_array_equal(a.footprint, b.footprint)
    np.testing.assert_array_equal(a.raw[1].data, b.raw[1].data)
    assert a.raw[0].header == b.raw[0].header
    for x, y in ((a.bias, b.bias), (a.flat, b.flat)):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.mask, y.mask)
    assert _patches(a) == _patches(b)
    for (_, x), (_, y) in zip(a.templates, b.templates, strict=True):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.variance, y.variance)
    assert a.refcat.colnames == b.refcat.colnames
    assert len(a.refcat) == len(b.refcat) > 0
    np.testing.assert_array_equal(a.refcat["id"], b.refcat["id"])
    assert (a.orbits is None) == (b.orbits is None)
    if a.orbits is not None and b.orbits is not None:
        assert list(a.orbits["id"]) == list(b.orbits["id"])


def assert_same_plan(a: selection.DetectorPlan, b: selection.DetectorPlan) -> None:
    """``a`` and ``b`` name the same datasets in the same order, with the same dimension
    records, validity ranges, patch geometry, footprints and observation facts."""
    assert [r.id for r in a.refs] == [r.id for r in b.refs]
    assert a.refs == b.refs
    for x, y in zip(a.refs, b.refs, strict=True):
        assert x.run == y.run and x.datasetType == y.datasetType
        assert x.dataId.hasRecords() == y.dataId.hasRecords()
        if x.dataId.hasRecords():
            assert x.dataId.records == y.dataId.records
    assert a.visit_data_id == b.visit_data_id
    if a.visit_data_id is not None and b.visit_data_id is not None:
        assert a.visit_data_id.records == b.visit_data_id.records
    assert (a.bias.timespan, a.flat.timespan) == (b.bias.timespan, b.flat.timespan)
    facts = ("visit", "detector", "band", "physical_filter", "mjd", "exptime", "boresight")
    assert [getattr(a, f) for f in facts] == [getattr(b, f) for f in facts]
    np.testing.assert_array_equal(a.corners, b.corners)
    np.testing.assert_array_equal(a.padded, b.padded)
    for (p, _), (q, _) in zip(a.templates, b.templates, strict=True):
        assert (p.tract, p.patch, p.index, p.shape) == (q.tract, q.patch, q.index, q.shape)
        np.testing.assert_array_equal(p.corners, q.corners)
        assert p.wcs.to_header_string() == q.wcs.to_header_string()
