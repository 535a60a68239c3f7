"""A tiny simulated night shared by the simulator tests (small detectors, few exposures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shutterline.simulate import config, night

SMALL = config.SimConfig(
    seed=7,
    visits=3,
    detectors=2,
    fields=2,
    template_visits=2,
    nx=256,
    ny=512,
    n_bias=2,
    n_flat=2,
    star_density=1.5e5,
    galaxy_density=1e5,
    variable_density=4e3,
    transient_density=6e3,
    asteroids_per_detector=5.0,
)


@pytest.fixture(scope="session")
def small_night(tmp_path_factory: pytest.TempPathFactory) -> night.NightSummary:
    """The small night, simulated once per session."""
    out: Path = tmp_path_factory.mktemp("night")
    return night.simulate_night(out, SMALL)
