"""The Butler-level template builder on a small simulated night (slow: runs every stage)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from astropy.table import Table
from lsst.daf.butler import Butler

from shutterline import exceptions
from shutterline.butler import ingest, names, repo
from shutterline.calibs import build as calib_build
from shutterline.images import MaskBit
from shutterline.templates import build

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Butler, dict, Table, object]:
    from shutterline.simulate import simulate_night

    root = tmp_path_factory.mktemp("templates")
    simulate_night(
        root / "sim",
        seed=8,
        visits=1,
        detectors=1,
        fields=1,
        nx=1024,
        ny=2048,
        template_visits=3,
        n_bias=3,
        n_flat=3,
    )
    butler = repo.create_repo(str(root / "repo"))
    ingest.ingest_raws(butler, [root / "sim" / "raw"], progress=False)
    ingest.ingest_refcat(butler, [root / "sim" / "refcat" / "refcat.fits"], progress=False)
    calib_build.build_calibs(butler, progress=False)
    summary = yaml.safe_load((root / "sim" / "night.yaml").read_text())
    refcat = Table.read(root / "sim" / "refcat" / "refcat.fits")
    return butler, summary, refcat, build.build_templates(butler, progress=False)


def test_default_selection_is_earlier_nights(night: tuple) -> None:
    butler, summary, _, result = night
    templates = {v["visit"] for v in summary["visits"] if v["role"] == "template"}
    chosen = {int(r.id) for r in build.template_exposures(butler)}
    assert chosen == templates
    assert result.templates and not result.skipped
    assert set().union(*map(set, result.inputs.values())) == templates


def _star_fluxes(exp: object, refcat: Table) -> tuple[np.ndarray, np.ndarray]:
    x, y = exp.wcs.all_world2pix(refcat["ra"], refcat["dec"], 0)
    radius = 3.0 * exp.metadata["PSF_FWHM"]
    h = int(radius) + 12
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    ap = xx**2 + yy**2 < radius**2
    ann = (xx**2 + yy**2 > (radius + 4) ** 2) & (xx**2 + yy**2 < (radius + 10) ** 2)
    measured, expected = [], []
    for xi, yi, flux in zip(x, y, refcat["r_flux"], strict=True):
        ix, iy = round(float(xi)), round(float(yi))
        if not (h <= ix < exp.shape[1] - h and h <= iy < exp.shape[0] - h) or flux < 3e4:
            continue
        box = slice(iy - h, iy + h + 1), slice(ix - h, ix + h + 1)
        if (exp.mask[box] & (MaskBit.NO_DATA | MaskBit.SAT)).any():
            continue
        stamp = exp.image[box]
        measured.append(float((stamp[ap] - np.median(stamp[ann])).sum()))
        expected.append(float(flux))
    return np.array(measured), np.array(expected)


def test_star_fluxes_in_njy(night: tuple) -> None:
    butler, _, refcat, result = night
    measured, expected = [], []
    for ref in result.templates.values():
        exp = butler.get(ref)
        assert exp.metadata["BUNIT"] == "nJy" and exp.psf is not None
        m, e = _star_fluxes(exp, refcat)
        measured.extend(m)
        expected.extend(e)
    ratio = np.array(measured) / np.array(expected)
    assert len(ratio) >= 5
    # Zero points fitted per input to ~1%; an aperture of 3 FWHM misses ~0.5% for a Moffat.
    assert float(np.median(ratio)) == pytest.approx(1.0, abs=0.03)


def test_mask_and_variance(night: tuple) -> None:
    butler, _, _, result = night
    key = max(result.templates, key=lambda k: len(result.inputs[k]))
    exp = butler.get(result.templates[key])
    covered = (exp.mask & MaskBit.NO_DATA) == 0
    assert 0 < covered.mean() < 1
    assert (exp.image[~covered] == 0).all() and (exp.variance[covered] > 0).all()
    sky = exp.image[covered]
    robust = 1.4826 * float(np.median(np.abs(sky - np.median(sky))))
    assert robust == pytest.approx(float(np.sqrt(np.median(exp.variance[covered]))), rel=0.2)


def test_nothing_selected_is_an_error(night: tuple) -> None:
    butler = night[0]
    with pytest.raises(exceptions.MissingInputError, match="no science exposures"):
        build.build_templates(butler, before_mjd=1000.0, progress=False)
    with pytest.raises(exceptions.MissingInputError, match="not registered"):
        build.template_exposures(butler, exposures=[424242])
    assert names.TEMPLATE == "template_coadd"


def test_existing_templates_refused_before_work(night: tuple) -> None:
    butler = night[0]
    with pytest.raises(exceptions.PermanentError, match="already exist"):
        build.build_templates(butler, progress=False)
