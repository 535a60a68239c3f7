"""`kernels.warm` compiles every kernel the stages call, for the signatures they call it with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

_ROOT = Path(__file__).resolve().parents[3]

_STAGES = textwrap.dedent(
    """
    import json
    import numpy as np
    from shutterline.differencing import _resample, detection, dia, streaks, subtract, warp
    from shutterline.isr import _amplifier, _blockmedian, assemble_raw, columns
    from tests.unit.differencing import synth
    from tests.unit.isr import synth as isr_synth

    rng = np.random.default_rng(1)
    shape = (256, 192)
    field = synth.make_field(rng, shape, n_stars=60)
    science = synth.make_science(rng, field, 1.1 / synth.SCI_SCALE)
    template = warp.warp_patches(synth.make_template_patches(rng, field, 0.8), field.wcs, shape)
    diff = subtract.subtract(science, template).difference
    dia.detect_and_measure(diff, science, template)
    columns.misbehaving_columns(science.image, science.variance, science.mask)
    assemble_raw(isr_synth.make_raw(np.full(shape, 500.0), isr_synth.default_layout(192), rng))
    kernels = {
        "block_medians": _blockmedian._medians, "neighbour_medians": _blockmedian._neighbours,
        "fill_amplifier": _amplifier.fill,
        "resample_into": _resample.resample_into, "dirty_blocks": _resample.dirty_blocks,
        "snr_blocks": streaks._snr_blocks, "zero_no_signal": detection._zero_no_signal,
        "divide_by_noise": detection._divide_by_noise,
        "hits": detection._hits, "footprint_roots": detection._roots,
    }
    print(json.dumps({k: [len(d.stats.cache_hits), len(d.stats.cache_misses)]
                      for k, d in kernels.items()}))
    """
)


def _run(code: str, cache: Path) -> str:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=_ROOT, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip


def test_warm_fills_the_cache_for_what_the_stages_call(tmp_path: Path) -> None:
    # Without warming, the stages compile every kernel (cache misses); after `warm` in
    # another process, each is loaded from the cache for the stages' own signatures.
    cold = json.loads(_run(_STAGES, tmp_path / "cold").splitlines()[-1])
    assert all(misses > 0 for _, misses in cold.values()), cold
    _run("from shutterline.differencing import kernels; kernels.warm()", tmp_path / "warm")
    warmed = json.loads(_run(_STAGES, tmp_path / "warm").splitlines()[-1])
    assert all(hits > 0 and misses == 0 for hits, misses in warmed.values()), warmed
