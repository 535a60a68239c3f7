"""assemble_raw: overscan, trim and gain from the section keywords; WCS; errors."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from shutterline import exceptions
from shutterline.images import MaskBit
from shutterline.isr import assemble_raw
from tests.unit.isr import synth

SHAPE = (200, 160)


def _scene(rng: np.random.Generator) -> np.ndarray:
    # A sky with a left-right ramp, so a misplaced amplifier shows.
    ramp = np.linspace(300.0, 900.0, SHAPE[1])[None, :]
    return np.broadcast_to(ramp, SHAPE).copy()


@pytest.mark.parametrize("layout", [synth.default_layout, synth.swapped_layout, synth.split_layout])
def test_recovers_electrons_per_amplifier(layout: synth.Layout) -> None:
    rng = np.random.default_rng(1)
    truth = _scene(rng)
    spec = synth.RawSpec()
    exp = assemble_raw(synth.make_raw(truth, layout(SHAPE[1]), rng, spec))
    assert exp.shape == SHAPE
    assert exp.image.dtype == np.float32 and exp.variance.dtype == np.float32
    half = SHAPE[1] // 2
    for amp, cols in (("A", slice(0, half)), ("B", slice(half, None))):
        resid = exp.image[:, cols] - truth[:, cols]
        noise = np.sqrt(truth[:, cols] + spec.read_noise[amp] ** 2)
        # Mean residual within 5 sigma of its error (bias level and gain recovered).
        err = float(noise.mean() / np.sqrt(resid.size))
        assert abs(float(resid.mean())) < 5 * err + 0.5
        # The variance plane predicts the scatter to within a few percent.
        chi = resid / np.sqrt(exp.variance[:, cols])
        assert float(chi.std()) == pytest.approx(1.0, abs=0.05)


def test_metadata_and_units() -> None:
    rng = np.random.default_rng(2)
    exp = assemble_raw(synth.make_raw(_scene(rng), synth.default_layout(SHAPE[1]), rng))
    md = exp.metadata
    assert (md["VISIT"], md["DETECTOR"], md["BAND"], md["BUNIT"]) == (1234, 7, "g", "electron")
    assert md["MJD"] == pytest.approx(61000.1)
    assert (md["EXPTIME"], md["TELRA"], md["TELDEC"], md["AIRMASS"]) == (30.0, 150.0, 2.0, 1.2)


@pytest.mark.parametrize("layout", [synth.default_layout, synth.swapped_layout])
def test_wcs_follows_the_trim(layout: synth.Layout) -> None:
    rng = np.random.default_rng(3)
    truth_wcs = synth.trimmed_wcs(SHAPE)
    hdul = synth.make_raw(_scene(rng), layout(SHAPE[1]), rng, wcs=truth_wcs)
    raw_wcs = synth.WCS(hdul[1].header)
    exp = assemble_raw(hdul)
    assert exp.wcs is not None
    # A physical pixel in each amplifier: same sky position through the raw WCS at its raw
    # position and through the trimmed WCS at its trimmed position.
    lay = layout(SHAPE[1])
    for amp, x_phys in (("A", 10.0), ("B", 130.0)):
        x_raw = x_phys - lay.physical[amp][0] + lay.data[amp][0]
        sky_raw = raw_wcs.pixel_to_world(x_raw, 50.0)
        sky_trim = exp.wcs.pixel_to_world(x_phys, 50.0)
        assert sky_raw.separation(sky_trim).arcsec < 1e-6
    assert exp.wcs.pixel_shape == (SHAPE[1], SHAPE[0])


def test_split_layout_wcs_exact_on_reference_amplifier() -> None:
    rng = np.random.default_rng(4)
    lay = synth.split_layout(SHAPE[1])
    hdul = synth.make_raw(_scene(rng), lay, rng)
    raw_wcs = synth.WCS(hdul[1].header)
    exp = assemble_raw(hdul)
    assert exp.wcs is not None
    # CRPIX lies in amplifier A: its pixels keep their sky positions.
    sep = raw_wcs.pixel_to_world(12.0, 30.0).separation(exp.wcs.pixel_to_world(12.0, 30.0))
    assert sep.arcsec < 1e-6


def test_saturation_flagged_in_adu_before_gain() -> None:
    rng = np.random.default_rng(5)
    truth = _scene(rng)
    spec = synth.RawSpec()
    # Above SATURATA (40000 ADU) once gain 4 and bias 1000 ADU are applied: 200000 e.
    truth[100, 20] = 200_000.0
    truth[100, 21] = 100_000.0  # 26000 ADU: bright but not saturated
    exp = assemble_raw(synth.make_raw(truth, synth.default_layout(SHAPE[1]), rng, spec))
    sat = (exp.mask & MaskBit.SAT) != 0
    assert sat[100, 20] and not sat[100, 21]
    assert int(sat.sum()) == 1


@pytest.mark.parametrize("keyword", ["GAINB", "BIASSECA", "DATASECB", "CCDNUM", "RDNOISEA"])
def test_missing_detector_keyword_named(keyword: str) -> None:
    rng = np.random.default_rng(6)
    hdul = synth.make_raw(_scene(rng), synth.default_layout(SHAPE[1]), rng)
    del hdul[1].header[keyword]
    with pytest.raises(exceptions.MalformedRawError, match=keyword) as info:
        assemble_raw(hdul)
    assert info.value.keyword == keyword


@pytest.mark.parametrize("keyword", ["EXPNUM", "FILTER", "MJD-OBS", "EXPTIME"])
def test_missing_primary_keyword_named(keyword: str) -> None:
    rng = np.random.default_rng(7)
    hdul = synth.make_raw(_scene(rng), synth.default_layout(SHAPE[1]), rng)
    del hdul[0].header[keyword]
    with pytest.raises(exceptions.MalformedRawError, match=keyword):
        assemble_raw(hdul)


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("GAINA", "four"), ("DATASECA", "[1:9999,1:200]"), ("BIASSECB", "nonsense"), ("GAINB", -1.0)],
)
def test_malformed_keyword_named(keyword: str, value: object) -> None:
    rng = np.random.default_rng(8)
    hdul = synth.make_raw(_scene(rng), synth.default_layout(SHAPE[1]), rng)
    hdul[1].header[keyword] = value
    with pytest.raises(exceptions.MalformedRawError, match=keyword):
        assemble_raw(hdul)


def test_truncated_raw_is_corrupt(tmp_path: object) -> None:
    rng = np.random.default_rng(9)
    hdul = synth.make_raw(_scene(rng), synth.default_layout(SHAPE[1]), rng)
    path = f"{tmp_path}/raw.fits"
    hdul.writeto(path)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with fits.open(path) as truncated, pytest.raises(exceptions.CorruptInputError, match="raw"):
        assemble_raw(truncated)


def test_no_image_extension_is_corrupt() -> None:
    primary = fits.PrimaryHDU(header=fits.Header(synth.RawSpec().primary))
    with pytest.raises(exceptions.CorruptInputError, match="image extension"):
        assemble_raw(fits.HDUList([primary]))


def test_overscan_follows_a_slow_row_drift_and_rejects_hits() -> None:
    from shutterline.isr import assembly

    rng = np.random.default_rng(10)
    rows = np.arange(2000)
    level = 1000.0 + 0.004 * rows  # 8 ADU of drift up the amplifier
    block = level[:, None] + rng.normal(0, 1.5, (2000, 40))
    block[500, 3] += 30000.0  # a cosmic ray in the overscan
    profile = assembly.overscan_profile(block, slice(0, 2000), slice(0, 2000))
    # Smoothed over 33 rows of 40 pixels: noise ~1.5 / sqrt(1320) ADU.
    np.testing.assert_allclose(profile[20:-20], level[20:-20], atol=0.25)
    assert abs(float(profile[500]) - level[500]) < 0.25


def test_overscan_not_covering_data_rows_uses_block_mean() -> None:
    from shutterline.isr import assembly

    rng = np.random.default_rng(11)
    block = 700.0 + rng.normal(0, 2.0, (100, 30))
    profile = assembly.overscan_profile(block, slice(0, 400), slice(0, 100))
    assert profile.shape == (400,)
    assert float(profile[0]) == pytest.approx(700.0, abs=0.1)
    assert np.ptp(profile) == 0.0


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32, np.float64])
def test_compiled_fill_gives_the_numpy_bytes(dtype: type) -> None:
    """`_amplifier.fill` writes what the NumPy passes it replaced wrote, from strided views of
    the raw and the planes: negative values (no variance below zero), a read noise of zero,
    and for floating-point raws NaN (propagated to the maximum, as ``ndarray.max``)."""
    from shutterline.isr import _amplifier

    rng = np.random.default_rng(3)
    raw = rng.integers(0, 65535, (300, 260)).astype(dtype)
    if np.dtype(dtype).kind == "f":
        raw[17, 60] = np.nan  # inside the data section
    data = raw[10:290, 50:250]
    profile = rng.normal(1000.0, 5.0, data.shape[0]).astype(np.float32)
    profile[::2] = np.round(profile[::2])  # some pixels exactly at the level: -0.0 below
    for gain, read_var in ((np.float32(1.7), np.float32(36.0)), (np.float32(-0.9), np.float32(0))):
        # Image and variance as views into one array, with margins that must stay untouched.
        fast, slow = (np.full((2, 280, 430), np.float32(-1.0)) for _ in range(2))
        top = _amplifier.fill(data, profile, gain, read_var, *fast[:, :, 30:230])
        image, variance = slow[:, :, 30:230]
        np.copyto(image, data, casting="unsafe")  # what `_fill_amp` did: cast, then in place
        image -= profile[:, None]
        image *= gain
        np.maximum(image, 0.0, out=variance)
        variance += read_var
        assert fast.tobytes() == slow.tobytes()
        np.testing.assert_array_equal(top, data.max())
