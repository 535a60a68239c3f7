"""Shared synthetic scenes: rendering costs ~0.2 s, so each is made once per session."""

from __future__ import annotations

import pytest

from shutterline.processing import characterize
from tests.unit.processing import synthetic


@pytest.fixture(scope="session")
def scene() -> synthetic.Scene:
    """Default scene: Moffat PSF of 1.0 arcsec, sky gradient, defects, 2 arcsec WCS error."""
    return synthetic.make_scene(synthetic.SceneConfig(seed=11))


@pytest.fixture(scope="session")
def characterized(scene: synthetic.Scene) -> characterize.CharacterizeResult:
    """`characterize` run once on `scene`."""
    return characterize.characterize(scene.exposure)
