"""Stage 2 entry point: contract, PSF accuracy, input left untouched, failures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shutterline.exceptions import PermanentError
from shutterline.images import Exposure
from shutterline.processing import characterize
from tests.unit.processing import synthetic


def _fingerprint(exp: Exposure) -> tuple[object, ...]:
    assert exp.wcs is not None
    return (
        exp.image.tobytes(), exp.mask.tobytes(), exp.variance.tobytes(),
        exp.wcs.to_header_string(), dict(exp.metadata), exp.psf,
    )  # fmt: skip


def test_result_contract(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> None:
    out = characterized.exposure
    assert out is not scene.exposure
    assert out.image.dtype == np.float32
    assert out.psf is not None
    assert out.psf.shape[0] % 2 == 1
    assert out.psf.shape[0] == out.psf.shape[1]
    assert float(out.psf.sum()) == pytest.approx(1.0, abs=1e-5)
    assert out.metadata["PSF_FWHM"] == pytest.approx(characterized.psf_model.fwhm)
    # The subtracted image plus the model is the input.
    np.testing.assert_allclose(
        out.image + characterized.background.array, scene.exposure.image, atol=0.05
    )
    assert characterized.stats["n_psf_stars"] >= 20


def test_input_not_modified() -> None:
    scene = synthetic.make_scene(dataclasses.replace(synthetic.SceneConfig(), seed=4))
    before = _fingerprint(scene.exposure)
    characterize.characterize(scene.exposure)
    after = _fingerprint(scene.exposure)
    assert before[:5] == after[:5]
    assert after[5] is None


def test_mask_copied_variance_shared(
    scene: synthetic.Scene, characterized: characterize.CharacterizeResult
) -> None:
    out = characterized.exposure
    assert out.variance is scene.exposure.variance
    assert not np.shares_memory(out.mask, scene.exposure.mask)
    assert not np.shares_memory(out.image, scene.exposure.image)


def test_fits_byte_order_accepted() -> None:
    scene = synthetic.make_scene(dataclasses.replace(synthetic.SceneConfig(), seed=6))
    exp = scene.exposure
    big = Exposure(
        image=exp.image.astype(">f4"),
        mask=exp.mask.astype(">i4"),
        variance=exp.variance.astype(">f4"),
        wcs=exp.wcs,
        metadata=exp.metadata,
    )
    native = characterize.characterize(exp)
    swapped = characterize.characterize(big)
    np.testing.assert_array_equal(native.exposure.image, swapped.exposure.image)
    assert len(native.sources) == len(swapped.sources)


def test_in_place_variant_reuses_planes() -> None:
    scene = synthetic.make_scene(dataclasses.replace(synthetic.SceneConfig(), seed=5))
    image = scene.exposure.image
    result = characterize.characterize(scene.exposure, in_place=True)
    assert result.exposure is scene.exposure
    assert result.exposure.image is image
    assert abs(float(np.median(image))) < 5.0  # the sky (800 e-) is gone


def test_in_place_gives_the_copying_result() -> None:
    """The detector driver characterizes in place (saves a copy): same sources, same PSF."""
    cfg = dataclasses.replace(synthetic.SceneConfig(), seed=7)
    copied = characterize.characterize(synthetic.make_scene(cfg).exposure)
    in_place = characterize.characterize(synthetic.make_scene(cfg).exposure, in_place=True)
    np.testing.assert_array_equal(copied.exposure.image, in_place.exposure.image)
    np.testing.assert_array_equal(copied.exposure.psf, in_place.exposure.psf)
    assert copied.sources.colnames == in_place.sources.colnames
    for column in copied.sources.colnames:
        np.testing.assert_array_equal(copied.sources[column], in_place.sources[column])


@pytest.mark.parametrize(
    ("fwhm_arcsec", "beta"), [(0.8, None), (0.8, 3.0), (1.4, 4.0), (2.0, 2.5), (2.0, None)]
)
def test_psf_fwhm_recovered(fwhm_arcsec: float, beta: float | None) -> None:
    cfg = synthetic.SceneConfig(fwhm_arcsec=fwhm_arcsec, moffat_beta=beta, seed=21)
    result = characterize.characterize(synthetic.make_scene(cfg).exposure)
    true_fwhm = fwhm_arcsec / synthetic.PIXEL_SCALE
    assert result.psf_model.fwhm == pytest.approx(true_fwhm, rel=0.03)


def test_spatially_varying_psf() -> None:
    cfg = synthetic.SceneConfig(n_stars=900, fwhm_gradient=0.12, ellipticity=0.1, seed=8)
    scene = synthetic.make_scene(cfg)
    model = characterize.characterize(scene.exposure).psf_model
    ny, nx = cfg.shape
    assert model.degree >= 1
    for y in (ny * 0.1, ny * 0.5, ny * 0.9):
        true_fwhm = synthetic._fwhm_at(cfg, y)
        # An e1 stretch changes the half-maximum area by sqrt(1 - e1^2) only.
        assert model.fwhm_at(nx / 2, y) == pytest.approx(true_fwhm, rel=0.04)
    assert model.fwhm_at(nx / 2, ny * 0.9) > 1.12 * model.fwhm_at(nx / 2, ny * 0.1)


def test_sparse_field_still_gets_a_psf() -> None:
    cfg = synthetic.SceneConfig(n_stars=30, n_galaxies=10, seed=0)
    result = characterize.characterize(synthetic.make_scene(cfg).exposure)
    assert result.psf_model.degree == 0
    assert result.psf_model.fwhm == pytest.approx(cfg.fwhm_arcsec / synthetic.PIXEL_SCALE, rel=0.05)


def test_empty_image_names_the_detector() -> None:
    rng = np.random.default_rng(1)
    shape = (512, 512)
    exp = Exposure(
        image=rng.normal(100.0, 10.0, shape).astype(np.float32),
        mask=np.zeros(shape, np.int32),
        variance=np.full(shape, 100.0, np.float32),
        metadata={"VISIT": 99, "DETECTOR": 12},
    )
    with pytest.raises(PermanentError, match=r"visit 99 detector 12.*PSF stars"):
        characterize.characterize(exp)
