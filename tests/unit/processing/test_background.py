"""Background: a sky gradient is recovered to a small fraction of the noise."""

from __future__ import annotations

import numpy as np

from shutterline.images import MaskBit
from shutterline.processing import background
from tests.unit.processing import synthetic


def test_gradient_recovered_under_sources(scene: synthetic.Scene) -> None:
    exp = scene.exposure
    model = background.estimate_background(exp.image, background.bad_pixel_mask(exp.mask))
    noise = float(np.sqrt(scene.config.sky))
    diff = model.evaluate() - scene.background
    # Faint undetected stars raise the sky a little; still far below the per-pixel noise.
    assert abs(float(np.median(diff))) < 0.05 * noise
    assert float(np.percentile(np.abs(diff), 99)) < 0.15 * noise
    assert model.array.dtype == np.float32
    assert model.array.shape == exp.shape


def test_masked_pixels_do_not_enter() -> None:
    rng = np.random.default_rng(3)
    image = rng.normal(500.0, 20.0, (512, 512)).astype(np.float32)
    mask = np.zeros(image.shape, np.int32)
    image[100:300, 100:300] = 60000.0  # a saturated blob and a hot block, both masked
    mask[100:300, 100:300] = int(MaskBit.SAT)
    image[:, 400] = 1e6
    mask[:, 400] = int(MaskBit.BAD)
    model = background.estimate_background(image, background.bad_pixel_mask(mask))
    assert np.max(np.abs(model.array - 500.0)) < 2.0  # 0.1 sigma


def test_bad_pixel_mask_bits() -> None:
    mask = np.array([[0, int(MaskBit.CR), int(MaskBit.DETECTED), int(MaskBit.NO_DATA)]], np.int32)
    assert background.bad_pixel_mask(mask).tolist() == [[False, True, False, True]]
