"""DECam's FILTER text to band: one mapping, used by the simulator, ingest, ISR and flats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from shutterline import exceptions
from shutterline.butler import ingest, repo
from shutterline.calibs import masters
from shutterline.camera import filters
from shutterline.isr import assemble_raw
from shutterline.simulate import rawfile, schedule
from tests.unit.butler.rawfiles import write_raw
from tests.unit.isr import synth

DECAM = {
    "g": "g DECam SDSS c0001 4720.0 1520.0",
    "r": "r DECam SDSS c0002 6415.0 1480.0",
    "i": "i DECam SDSS c0003 7835.0 1470.0",
}


@pytest.mark.parametrize("band", sorted(DECAM))
def test_decam_strings_map_to_bands_and_back(band: str) -> None:
    assert filters.band_of(DECAM[band]) == band
    assert filters.band_of("  " + DECAM[band].replace(" ", "   ") + " ") == band
    assert filters.physical_filter_of(band) == DECAM[band]


@pytest.mark.parametrize(
    ("text", "why"),
    [("r", "not a DECam filter"), ("z DECam SDSS c0004 9260.0 1520.0", "band 'z'"), ("", "not")],
)
def test_unknown_or_unsupported_filter_says_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        filters.band_of(text)


def test_simulator_writes_decam_filter_text() -> None:
    plan = schedule.ExposurePlan(
        expnum=7, role="science", band="i", mjd=61000.1, exptime=30.0, field="f", ra=10.0,
        dec=-5.0, airmass=1.1, seeing_arcsec=1.0, zeropoint_mag=25.0, sky_e_per_px=100.0,
    )  # fmt: skip
    assert rawfile.primary_header(plan)["FILTER"] == DECAM["i"]


def _isr_raw(band_text: str, obstype: str = "dome flat", seed: int = 0) -> fits.HDUList:
    level = 0.0 if obstype == "zero" else 5000.0
    rng = np.random.default_rng(seed)
    spec = synth.RawSpec()
    spec.primary.update({"FILTER": band_text, "OBSTYPE": obstype})
    return synth.make_raw(np.full((40, 32), level), synth.default_layout(32), rng, spec)


def test_isr_metadata_and_master_flat_carry_the_band() -> None:
    exps = [assemble_raw(_isr_raw(DECAM["r"], seed=s)) for s in range(3)]
    assert {e.metadata["BAND"] for e in exps} == {"r"}
    biases = [assemble_raw(_isr_raw(DECAM["r"], "zero", seed=9 + s)) for s in range(3)]
    assert {b.metadata["BAND"] for b in biases} == {filters.NO_FILTER}
    flat = masters.master_flat(exps, masters.master_bias(biases))
    assert flat.metadata["BAND"] == "r"


def test_isr_bias_has_no_band_and_unknown_filter_is_named() -> None:
    bias = assemble_raw(_isr_raw("solid plate 0.0 0.0", obstype="zero"))
    assert bias.metadata["BAND"] == filters.NO_FILTER
    with pytest.raises(exceptions.MalformedRawError, match=r"FILTER.*'r DECam'"):
        assemble_raw(_isr_raw("r DECam"))


def test_ingest_registers_the_band(tmp_path: Path) -> None:
    butler = repo.create_repo(str(tmp_path / "repo"))
    sci = write_raw(tmp_path / "s.fits", 5, 1, band="r")
    bias = write_raw(tmp_path / "b.fits", 6, 1, obstype="zero", band="solid plate 0.0 0.0")
    assert fits.getheader(sci)["FILTER"] == DECAM["r"]
    ingest.ingest_raws(butler, [sci, bias], progress=False)
    got = {int(r.id): r.physical_filter for r in butler.query_dimension_records("exposure")}
    assert got == {5: "r", 6: filters.NO_FILTER}
