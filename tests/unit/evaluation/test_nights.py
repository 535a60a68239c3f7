"""The fresh nights are new seeds, and differ from the fitting nights as the validation ones do."""

from __future__ import annotations

from shutterline.evaluation import nights
from shutterline.simulate import config


def test_fresh_nights_are_new_seeds_with_other_conditions() -> None:
    seen = {s.seed for s in (*nights.FITTING, *nights.VALIDATION)}
    assert nights.FRESH and not {s.seed for s in nights.FRESH} & seen
    names = [s.name for s in (*nights.FITTING, *nights.VALIDATION, *nights.FRESH)]
    assert len(set(names)) == len(names)  # each has its own cached directory
    fitted = [s.settings for s in nights.FITTING]
    for spec in nights.FRESH:
        config.SimConfig(seed=spec.seed, **spec.settings)  # every setting is a simulator field
        assert spec.settings.get("seeing_scale", 1.0) != 1.0
        assert spec.settings not in fitted
