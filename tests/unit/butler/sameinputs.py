"""One check that two `DetectorInputs` hold the same inputs, for every test that loads a
detector's inputs two ways (pre-cached or direct, through a plan or not)."""

from __future__ import annotations

import numpy as np

from shutterline.butler import inputs

__all__ = ["assert_same_inputs"]


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
