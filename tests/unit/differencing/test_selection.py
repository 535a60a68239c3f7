"""The DIA selection: one rule table (`dia.rejections`), its classifier bars from settings."""

from __future__ import annotations

import numpy as np

from shutterline.differencing import dia, subtract
from shutterline.pipeline import settings as settings_mod
from tests.unit.differencing import synth


def test_accept_is_no_rule_dropping_and_the_bars_move_it() -> None:
    pair = synth.make_pair(71, 1.0, 0.7, shape=(384, 256), spacing=48, snr=8.0)
    rng = np.random.default_rng(71)
    for y, x in rng.integers(30, 220, (10, 2)):
        pair.science.image[y, x] += 3000.0  # sharp spikes the classifier scores low
    res = subtract.subtract(pair.science, pair.template)
    table = dia.detect_and_measure(res.difference, pair.science, pair.template, select=False)
    drops = dia.rejections(table)
    assert set(drops) == {"dipole", "shape", "penalty", "extended_negative", "residual",
                          "classifier", "streak"}  # fmt: skip
    assert np.array_equal(dia.accept(table), ~np.any(np.vstack(list(drops.values())), axis=0))
    assert drops["classifier"].any() and not dia.rejections(table, 0.0, 0.0)["classifier"].any()
    # The bars reach the selection: none keeps more, an impossible one keeps nothing.
    kept = len(dia.detect_and_measure(res.difference, pair.science, pair.template))
    loose = dia.detect_and_measure(res.difference, pair.science, pair.template,
                                   min_classifier=0.0, min_classifier_bright=0.0)  # fmt: skip
    none = dia.detect_and_measure(res.difference, pair.science, pair.template,
                                  min_classifier=1.01, min_classifier_bright=1.01)  # fmt: skip
    assert len(loose) > kept > 0 and len(none) == 0


def test_the_bars_are_settings_defaulting_to_dia() -> None:
    base = {"SHUTTERLINE_REPO": "/r", "SHUTTERLINE_APDB": "/a.sqlite3"}
    default = settings_mod.Settings.from_env(base)
    assert (default.dia_min_classifier, default.dia_min_classifier_bright) == (
        dia.MIN_CLASSIFIER, dia.MIN_CLASSIFIER_BRIGHT)  # fmt: skip
    env = {
        "SHUTTERLINE_DIA_MIN_CLASSIFIER": "0.25",
        "SHUTTERLINE_DIA_MIN_CLASSIFIER_BRIGHT": "0.02",
    }
    site = settings_mod.Settings.from_env({**base, **env})
    assert (site.dia_min_classifier, site.dia_min_classifier_bright) == (0.25, 0.02)
