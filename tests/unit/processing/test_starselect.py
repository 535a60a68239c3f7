"""PSF star selection: the stellar locus among galaxies."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.processing import starselect


def test_stellar_locus_ignores_galaxies() -> None:
    rng = np.random.default_rng(2)
    stars = rng.normal(2.0, 0.03, 60)
    galaxies = rng.uniform(2.5, 8.0, 120)  # twice as many galaxies, all larger
    assert starselect.stellar_locus(np.concatenate([stars, galaxies])) == pytest.approx(
        2.0, rel=0.02
    )


def test_tied_galaxy_group_loses_to_the_compact_stars() -> None:
    # A sparse field: as many galaxies pile up at one size as there are stars. The stars are
    # the most compact band, so they win the tie (averaging the tied bands lands on neither).
    stars = np.array([2.58, 2.60, 2.61, 2.63, 2.64])
    galaxies = np.array([3.86, 3.88, 3.90, 3.92, 3.95])
    scattered = np.array([1.9, 3.2, 4.6, 5.5])
    r50 = np.concatenate([galaxies, scattered, stars])
    assert starselect.stellar_locus(r50) == pytest.approx(2.61, rel=0.01)


def test_outnumbering_galaxy_group_loses_to_the_compact_stars() -> None:
    # Fewer bright stars than galaxies of one size: the stars' band, the most compact of
    # those at least half as dense as the densest, is still the locus.
    stars = np.array([2.28, 2.30, 2.31, 2.33, 2.36])
    galaxies = np.array([3.95, 3.99, 4.03, 4.05, 4.08, 4.10, 4.11])
    scattered = np.array([1.7, 2.9, 3.3, 5.0])
    r50 = np.concatenate([galaxies, scattered, stars])
    assert starselect.stellar_locus(r50) == pytest.approx(2.31, rel=0.01)


def test_stamp_size_grows_with_psf() -> None:
    assert starselect.stamp_half_size(1.5) < starselect.stamp_half_size(4.0)
    assert starselect.stamp_half_size(0.1) == 7


def test_no_measurable_radius_selects_no_stars() -> None:
    # Candidates whose half-light radius sep cannot measure (flux <= 0 inside the aperture)
    # leave no stellar locus: the selection is empty (characterize then says why), not a crash.
    image = np.full((64, 64), -1.0, np.float32)
    objects = np.zeros(6, dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8"), ("flag", "i4")])
    objects["x"] = objects["y"] = np.linspace(20.0, 44.0, 6)
    stars, locus = starselect.select_psf_stars(
        image,
        np.zeros(image.shape, bool),
        objects,
        np.full(6, 100.0),
        np.zeros(6, bool),
        starselect.PsfStarConfig(),
    )
    assert stars.size == 0
    assert np.isnan(locus)
