"""DIA object summaries against direct numpy computations on a seeded history."""

from __future__ import annotations

import numpy as np
import pandas
import pytest

from shutterline.association import summary


def _history(seed: int = 0) -> pandas.DataFrame:
    rng = np.random.default_rng(seed)
    n = 60
    return pandas.DataFrame(
        {
            "diaObjectId": rng.choice([11, 22, 33], n),
            "ra": 150.0 + rng.normal(0, 1e-5, n),
            "dec": 2.0 + rng.normal(0, 1e-5, n),
            "raErr": np.full(n, 1e-5),
            "decErr": np.full(n, 2e-5),
            "ra_dec_Cov": rng.uniform(-1e-10, 1e-10, n),
            "band": rng.choice(["g", "r"], n),
            "psfFlux": rng.normal(1000, 100, n),
            "psfFluxErr": rng.uniform(50, 150, n),
            "scienceFlux": rng.normal(5000, 100, n),
            "scienceFluxErr": rng.uniform(50, 150, n),
            "midpointMjdTai": 60000.0 + rng.permutation(n) * 0.5,
        }
    )


def test_per_band_statistics_match_direct_computation():
    hist = _history()
    out = summary.summarize(hist, pandas.DataFrame())
    assert out.index.tolist() == [11, 22, 33]
    for oid in (11, 22, 33):
        for band in ("g", "r"):
            sel = hist[(hist.diaObjectId == oid) & (hist.band == band)]
            f, e = sel.psfFlux.to_numpy(), sel.psfFluxErr.to_numpy()
            w = 1 / e**2
            row = out.loc[oid]
            assert row[f"{band}_psfFluxMean"] == pytest.approx(np.sum(w * f) / np.sum(w))
            assert row[f"{band}_psfFluxMeanErr"] == pytest.approx(1 / np.sqrt(np.sum(w)))
            assert row[f"{band}_psfFluxSigma"] == pytest.approx(np.std(f, ddof=1))
            assert row[f"{band}_psfFluxNdata"] == len(sel)
            assert row[f"{band}_psfFluxMin"] == pytest.approx(f.min())
            assert row[f"{band}_psfFluxMax"] == pytest.approx(f.max())
            assert row[f"{band}_psfFluxErrMean"] == pytest.approx(e.mean())
            ordered = sel.sort_values("midpointMjdTai")
            slopes = np.abs(np.diff(ordered.psfFlux) / np.diff(ordered.midpointMjdTai))
            assert row[f"{band}_psfFluxMaxSlope"] == pytest.approx(slopes.max())
        assert np.isnan(out.loc[oid, "u_psfFluxMean"]) and out.loc[oid, "u_psfFluxNdata"] == 0
        sel = hist[hist.diaObjectId == oid]
        assert out.loc[oid, "decErr"] == pytest.approx(2e-5 / np.sqrt(len(sel)))
        # The mean position's covariance: sum of the sources' over n**2, like the errors.
        assert out.loc[oid, "ra_dec_Cov"] == pytest.approx(sel.ra_dec_Cov.sum() / len(sel) ** 2)
        assert out.loc[oid, "firstDiaSourceMjdTai"] == sel.midpointMjdTai.min()
        assert out.loc[oid, "lastDiaSourceMjdTai"] == sel.midpointMjdTai.max()


def test_single_source_has_no_spread_and_forced_means_are_per_object():
    hist = _history().iloc[:1]
    forced = pandas.DataFrame(
        {
            "diaObjectId": [int(hist.diaObjectId.iloc[0])] * 2 + [999],
            "band": ["r", "r", "r"],
            "psfFlux": [100.0, 300.0, 1e6],
            "psfFluxErr": [10.0, 10.0, 1.0],
        }
    )
    out = summary.summarize(hist, forced)
    band = hist.band.iloc[0]
    assert np.isnan(out.iloc[0][f"{band}_psfFluxSigma"])
    assert np.isnan(out.iloc[0][f"{band}_psfFluxMaxSlope"])
    # The forced source of an object without sources here (999) is ignored.
    assert out.iloc[0]["r_fpFluxMean"] == pytest.approx(200.0)
    assert out.iloc[0]["r_fpFluxMeanErr"] == pytest.approx(10 / np.sqrt(2))
