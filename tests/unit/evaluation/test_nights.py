"""The fresh nights are new seeds, and differ from the fitting nights as the validation ones do."""

from __future__ import annotations

from shutterline.evaluation import nights
from shutterline.simulate import config


def test_fresh_nights_are_new_seeds_with_other_conditions() -> None:
    seen = {s.seed for s in (*nights.FITTING, *nights.VALIDATION)}
    assert nights.FRESH and not {s.seed for s in nights.FRESH} & (seen | nights.SEEDS_RUN_BEFORE)
    names = [s.name for s in (*nights.FITTING, *nights.VALIDATION, *nights.FRESH)]
    assert len(set(names)) == len(names)  # each has its own cached directory
    fitted = [s.settings for s in nights.FITTING]
    for spec in nights.FRESH:
        config.SimConfig(seed=spec.seed, **spec.settings)  # every setting is a simulator field
        assert spec.settings.get("seeing_scale", 1.0) != 1.0
        assert spec.settings not in fitted
        assert not spec.seen
    # ... and from each other in seeing, density and defects.
    a, b = (s.settings for s in nights.FRESH)
    for key in ("seeing_scale", "star_density", "late_columns_per_detector"):
        assert a.get(key) != b.get(key), key


def test_nights_run_before_are_validation_and_say_how_often() -> None:
    """Earlier stops' fresh nights (303, 404; 505, 606; 707, 808) moved to the validation set,
    labelled."""
    assert {s.seed for s in nights.FITTING} <= nights.SEEDS_RUN_BEFORE
    assert {s.seed for s in nights.VALIDATION} == nights.SEEDS_RUN_BEFORE - {7, 13}
    labels = {s.seed: s.seen for s in nights.VALIDATION}
    assert labels == {101: "seen before", 202: "seen before", 303: "seen once", 404: "seen once",
                      505: "seen once", 606: "seen once", 707: "seen once",
                      808: "seen once"}  # fmt: skip
    for spec in nights.VALIDATION:
        config.SimConfig(seed=spec.seed, **spec.settings)
