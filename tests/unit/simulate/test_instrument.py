"""The instrument signature: bias, gain, read noise, saturation with bleed trails."""

from __future__ import annotations

import numpy as np
import yaml
from astropy.io import fits

from shutterline.camera import geometry as sections
from shutterline.camera import rawformat
from shutterline.simulate import detector, geometry, night, rawfile
from tests.unit.simulate import helpers


def _amp_stats(path: object, amp: str) -> tuple[float, float, float, dict]:
    """(overscan median, overscan std, data median) in ADU of one amplifier, and the header."""
    with fits.open(path) as hdul:
        header, pixels = hdul[1].header, hdul[1].data.astype(float)
    data = pixels[sections.parse_section(header[rawformat.amp_key("DATASEC", amp)]).slices]
    bias = pixels[sections.parse_section(header[rawformat.amp_key("BIASSEC", amp)]).slices]
    return float(np.median(bias)), float(np.std(bias)), float(np.median(data)), dict(header)


def test_bias_levels_and_read_noise_match_the_headers(small_night: night.NightSummary) -> None:
    record = yaml.safe_load((small_night.out / "night.yaml").read_text())
    for det in record["detectors"]:
        path = rawfile.raw_path(small_night.out, small_night.bias[0], det["ccdnum"])
        for amp in rawformat.AMPLIFIERS:
            level, spread, data, header = _amp_stats(path, amp)
            assert abs(level - det["bias_level"][amp]) < 2.0  # plus a slow drift < 1.5 ADU
            # Overscan noise times the gain is the read noise (drift adds a little).
            rn = spread * header[rawformat.amp_key("GAIN", amp)]
            assert abs(rn / header[rawformat.amp_key("RDNOISE", amp)] - 1.0) < 0.1
            assert abs(data - level) < 6.0  # a bias holds no light: only the fixed pattern


def test_flat_counts_agree_between_amplifiers_through_the_gains(
    small_night: night.NightSummary,
) -> None:
    flat = next(iter(small_night.flat.values()))[0]
    for ccd in small_night.ccdnums:
        path = rawfile.raw_path(small_night.out, flat, ccd)
        electrons = []
        for amp in rawformat.AMPLIFIERS:
            level, _, data, header = _amp_stats(path, amp)
            electrons.append((data - level) * header[rawformat.amp_key("GAIN", amp)])
        # The same illumination on both halves; header gains are right to about 1%.
        assert 15000 < electrons[0] < 26000
        assert abs(electrons[0] / electrons[1] - 1.0) < 0.04


def test_sky_counts_match_the_recorded_sky(small_night: night.NightSummary) -> None:
    record = yaml.safe_load((small_night.out / "night.yaml").read_text())
    visit = next(v for v in record["visits"] if v["role"] == "science")
    path = rawfile.raw_path(small_night.out, visit["visit"], small_night.ccdnums[0])
    level, _, data, header = _amp_stats(path, "A")
    sky = (data - level) * header["GAINA"]
    # Sources push the median up a little; the response has mean 1.
    assert 0.97 < sky / visit["sky_e_per_px"] < 1.08


def test_bleed_conserves_charge_and_runs_along_columns() -> None:
    image = np.full((200, 20), 100.0, dtype=np.float32)
    image[100, 10] = 1.0e6
    image[100, 11] = 3.0e5
    before = image.sum()
    saturated = detector.bleed(image, np.full(20, 1.0e5, dtype=np.float32))
    assert np.isclose(image.sum(), before, rtol=1e-6)
    assert image.max() <= 1.0e5
    # 1e6 e-: the core well plus four on each side; the rest half-fills one more each side.
    assert saturated[:, 10].sum() == 9
    assert 0.4e5 < image[95, 10] < 0.6e5 and 0.4e5 < image[105, 10] < 0.6e5
    assert saturated[:, 11].sum() == 3
    assert not saturated[:, :10].any() and not saturated[:, 12:].any()


def test_bright_star_saturates_with_a_bleed_trail() -> None:
    p = helpers.plan(sky_e=100.0)
    true_wcs = geometry.detector_wcs(helpers.CFG, helpers.CCD, p.ra, p.dec)
    ra, dec = geometry.data_pixels_to_sky(
        true_wcs, helpers.CFG, np.array([60.0]), np.array([250.0])
    )
    sim = helpers.simulate(p, helpers.one_source(ra[0], dec[0], 3.0e8))
    model = detector.make_detector(helpers.CFG, helpers.CCD)
    raw = geometry.raw_layout(helpers.CFG)
    data = sim.pixels[raw.data["A"].slices]
    sat = data >= model.saturate_adu["A"]
    rows, cols = np.nonzero(sat)
    assert len(rows) > 20
    assert np.ptp(rows) > 3 * np.ptp(cols)  # a trail along the column
    assert abs(np.median(rows) - 250) < 3 and abs(np.median(cols) - 60) < 3
    # Nothing but saturated pixels reaches SATURAT.
    assert data.max() == model.saturate_adu["A"]


def test_bad_columns_show_in_flats(small_night: night.NightSummary) -> None:
    record = yaml.safe_load((small_night.out / "night.yaml").read_text())
    det = record["detectors"][0]
    flat = next(iter(small_night.flat.values()))[0]
    pixels = fits.getdata(rawfile.raw_path(small_night.out, flat, det["ccdnum"]), 1)
    cfg = small_night.config
    for col, first_row, kind in det["bad_columns"]:
        column = pixels[first_row + 5 :, col + cfg.overscan].astype(float)
        neighbour = pixels[first_row + 5 :, col + cfg.overscan + 2].astype(float)
        if kind == "dead":
            assert np.median(column) < 0.5 * np.median(neighbour)
        else:
            assert np.median(column) > np.median(neighbour) + 200
