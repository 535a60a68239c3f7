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


def test_stamp_size_grows_with_psf() -> None:
    assert starselect.stamp_half_size(1.5) < starselect.stamp_half_size(4.0)
    assert starselect.stamp_half_size(0.1) == 7
