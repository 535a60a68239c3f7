"""The synthetic known-object catalogue: sizes, distributions, determinism, the night merged in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shutterline.simulate import orbitcatalog
from shutterline.solarsystem import mpcorbits, orbits

EPOCH = 61200.0
N = 200_000


@pytest.fixture(scope="module")
def catalog() -> mpcorbits.Catalog:
    return orbitcatalog.synthesize(N, 5, EPOCH)


def test_every_mpc_orbits_column_with_its_dtype(catalog: mpcorbits.Catalog) -> None:
    for name, dtype in mpcorbits.COLUMNS:
        assert len(catalog[name]) == N, name
        assert np.asarray(catalog[name], dtype).dtype == np.dtype(dtype)
    assert len(np.unique(catalog["id"])) == N
    assert len(np.unique(catalog["designation"])) == N
    assert len(np.unique(catalog["packed_primary_provisional_designation"])) == N
    np.testing.assert_allclose(catalog["q"], catalog["a"] * (1 - catalog["e"]))


def test_class_shares_and_distributions(catalog: mpcorbits.Catalog) -> None:
    kind = catalog["orbit_type_int"]
    a, e, q = catalog["a"], catalog["e"], catalog["q"]
    share = np.bincount(kind, minlength=5) / N
    np.testing.assert_allclose(share[1:5], [0.025, 0.004, 0.010, 0.0003], atol=1e-4)
    belt = kind == mpcorbits.ORBIT_TYPES["main_belt"]
    assert a[belt].min() > 2.1 and a[belt].max() < 3.3
    for gap in (2.502, 2.825, 2.958):  # Kirkwood gaps empty, their flanks populated
        assert np.sum(np.abs(a[belt] - gap) < 0.008) == 0
        assert np.sum(np.abs(np.abs(a[belt] - gap) - 0.04) < 0.01) > 1000
    assert 0.05 < np.median(e[belt]) < 0.12 and 4.0 < np.median(catalog["i"][belt]) < 11.0
    assert np.all(q[kind == mpcorbits.ORBIT_TYPES["neo"]] < 1.3)
    assert np.all((e >= 0) & (e < 1))
    assert 17.0 < np.median(catalog["h"][belt]) < 19.5


def test_trojans_lead_and_trail_jupiter(catalog: mpcorbits.Catalog) -> None:
    troj = catalog["orbit_type_int"] == mpcorbits.ORBIT_TYPES["trojan"]
    longitude = catalog["node"][troj] + catalog["argperi"][troj] + catalog["mean_anomaly"][troj]
    jupiter = 34.40438 + 0.0830853 * (EPOCH - 51544.5)
    offset = (longitude - jupiter + 180.0) % 360.0 - 180.0
    assert np.mean(np.abs(np.abs(offset) - 60.0) < 30.0) > 0.95


def test_same_seed_same_catalogue_other_seed_other(tmp_path: Path) -> None:
    one, two = orbitcatalog.synthesize(5000, 1, EPOCH), orbitcatalog.synthesize(5000, 1, EPOCH)
    mpcorbits.write_catalog(tmp_path / "a.npz", one)
    mpcorbits.write_catalog(tmp_path / "b.npz", two)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    other = orbitcatalog.synthesize(5000, 2, EPOCH)
    assert not np.array_equal(one["a"], other["a"])
    back = mpcorbits.read_catalog(tmp_path / "a.npz")
    for name, _ in mpcorbits.COLUMNS:
        np.testing.assert_array_equal(back[name], one[name])


def test_night_merged_keeps_size_ids_and_elements() -> None:
    cat = orbitcatalog.synthesize(1000, 3, EPOCH)
    night = orbits.make_orbits([90000001, 90000002], 2.5, 0.1, 5.0, 10.0, 20.0, 30.0, EPOCH, 18)
    merged = orbitcatalog.merge_night(cat, night)
    assert len(merged["id"]) == 1000
    np.testing.assert_array_equal(merged["id"][-2:], [90000001, 90000002])
    assert list(merged["designation"][-2:]) == [b"90000001", b"90000002"]
    np.testing.assert_array_equal(merged["a"][-2:], [2.5, 2.5])
    np.testing.assert_array_equal(merged["a"][:998], cat["a"][:998])


def test_bad_input_is_named(tmp_path: Path) -> None:
    cat = orbitcatalog.synthesize(10, 3, EPOCH)
    clash = orbits.make_orbits([3], 2.5, 0.1, 5.0, 10.0, 20.0, 30.0, EPOCH, 18)
    with pytest.raises(ValueError, match="collide"):
        orbitcatalog.merge_night(cat, clash)
    with pytest.raises(ValueError, match="positive"):
        orbitcatalog.synthesize(0, 1, EPOCH)
    del cat["h"]
    with pytest.raises(ValueError, match="lacks mpc_orbits columns"):
        mpcorbits.write_catalog(tmp_path / "x.npz", cat)
    assert not (tmp_path / "x.npz").exists()
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not an orbit catalogue"):
        mpcorbits.read_catalog(tmp_path / "other.npz")


def test_cli_synthesize_then_precompute(tmp_path: Path) -> None:
    from shutterline.cli import main
    from shutterline.solarsystem import lookup

    night = tmp_path / "night"
    (night / "solarsystem").mkdir(parents=True)
    orbits.make_orbits([90000001], 2.5, 0.1, 5.0, 10.0, 20.0, 30.0, EPOCH, 18).write(
        night / "solarsystem" / "orbits.csv", format="ascii.csv"
    )
    cat, out = tmp_path / "cat.npz", tmp_path / "pieces"
    assert (
        main.main(["orbits", "synthesize", "--out", str(cat), "--n", "500", "--night", str(night)])
        == 0
    )
    assert mpcorbits.read_catalog(cat)["id"][-1] == 90000001
    args = ["orbits", "precompute", "--catalog", str(cat), "--out", str(out), "--start", "61280"]
    assert main.main([*args, "--hours", "2"]) == 0
    assert lookup.lookup(out, (0.0, 0.0), 180.0, 61280.05)["id"].size == 500
    with pytest.raises(SystemExit):
        main.main([*args, "--jobs", "0"])
