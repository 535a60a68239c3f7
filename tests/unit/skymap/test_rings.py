"""Sky-map geometry: every sky position has a tract, patches tile it, footprints are covered."""

import numpy as np
import pytest

from shutterline.skymap import SKYMAP


def test_every_tract_centre_maps_back_to_its_tract() -> None:
    tracts = np.arange(0, SKYMAP.tract_max, 97)
    centres = np.array([SKYMAP.tract_center(int(t)) for t in tracts])
    np.testing.assert_array_equal(SKYMAP.find_tracts(centres[:, 0], centres[:, 1]), tracts)


def test_patch_grid_is_the_tract_grid_shifted() -> None:
    tract = int(SKYMAP.find_tracts(np.array([150.0]), np.array([2.3]))[0])
    patch = SKYMAP.patch(tract, 3 * SKYMAP.n_patches + 4)
    x0 = 4 * SKYMAP.patch_inner - SKYMAP.patch_overlap
    y0 = 3 * SKYMAP.patch_inner - SKYMAP.patch_overlap
    ra, dec = patch.wcs.all_pix2world([10.0], [20.0], 0)
    tx, ty = SKYMAP.tract_wcs(tract).all_world2pix(ra, dec, 0)
    assert tx[0] == pytest.approx(10.0 + x0, abs=1e-6)
    assert ty[0] == pytest.approx(20.0 + y0, abs=1e-6)
    assert patch.shape == (SKYMAP.patch_inner + 2 * SKYMAP.patch_overlap,) * 2


@pytest.mark.parametrize("ra0,dec0", [(30.0, -20.0), (359.99, 0.5), (200.0, 45.0)])
def test_patches_cover_a_detector_footprint(ra0: float, dec0: float) -> None:
    # A 9' x 18' footprint, possibly across tract boundaries or RA = 0.
    half = np.array([[-4.5, -9.0], [4.5, -9.0], [4.5, 9.0], [-4.5, 9.0]]) / 60.0
    ra = ra0 + half[:, 0] / np.cos(np.radians(dec0))
    dec = dec0 + half[:, 1]
    patches = SKYMAP.patches_overlapping(ra, dec, padding_arcsec=30.0)
    rng = np.random.default_rng(1)
    u = rng.uniform(-1, 1, (500, 2)) * np.array([4.5, 9.0]) / 60.0
    pra, pdec = ra0 + u[:, 0] / np.cos(np.radians(dec0)), dec0 + u[:, 1]
    covered = np.zeros(len(pra), bool)
    for info in patches:
        x, y = info.wcs.all_world2pix(pra, pdec, 0)
        ny, nx = info.shape
        covered |= (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
    assert covered.all()
    assert len(patches) < 60


def test_unknown_patch_is_an_error() -> None:
    with pytest.raises(KeyError, match="no patch"):
        SKYMAP.patch(0, SKYMAP.n_patches**2)
