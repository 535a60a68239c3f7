"""DIA object summaries recomputed from an object's sources and forced sources.

Every summary (mean position, per-band weighted mean fluxes and their spread, extremes,
largest slope, first and last times) is recomputed from the sources the APDB returns within
its history window plus this visit's. Grouping is done with ``numpy.bincount`` and
``ufunc.at`` over an object index, so the cost is a few array passes whatever the number of
objects (pandas' groupby costs milliseconds per call, and there are dozens of them).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pandas

from shutterline.association import visitinfo

__all__ = ["BANDS", "FORCED_COLUMNS", "SOURCE_COLUMNS", "slim", "summarize"]

#: The bands the APDB and alert schemas carry per-band summaries for.
BANDS = ("u", "g", "r", "i", "z", "y")

SOURCE_COLUMNS = (
    "diaObjectId",
    "ra",
    "dec",
    "raErr",
    "decErr",
    "ra_dec_Cov",
    "psfFlux",
    "psfFluxErr",
    "scienceFlux",
    "scienceFluxErr",
    "midpointMjdTai",
)
FORCED_COLUMNS = ("diaObjectId", "psfFlux", "psfFluxErr")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def slim(frame: pandas.DataFrame, columns: tuple[str, ...]) -> pandas.DataFrame:
    """Only ``columns`` (plus ``band``) as plain numpy arrays, NaN for missing values.

    The APDB frames are wide and use pandas' masked dtypes, whose every filter copies all
    columns; a narrow float frame makes concatenation and grouping cheap.
    """
    data: dict[str, np.ndarray] = {}
    for name in columns:
        if name == "diaObjectId":
            data[name] = frame[name].to_numpy(np.int64)
        elif name in frame:
            data[name] = frame[name].to_numpy(np.float64, na_value=np.nan)
        else:
            data[name] = np.full(len(frame), np.nan)
    data["band"] = frame["band"].to_numpy(object)
    return pandas.DataFrame(data)


@dataclasses.dataclass(frozen=True)
class _Groups:
    """Group index ``inv`` (into ``k`` groups) of a set of rows."""

    inv: IntArray
    k: int

    def count(self, mask: npt.NDArray[np.bool_]) -> FloatArray:
        return np.asarray(np.bincount(self.inv[mask], minlength=self.k), np.float64)

    def total(self, values: FloatArray, mask: npt.NDArray[np.bool_]) -> FloatArray:
        totals = np.bincount(self.inv[mask], weights=values[mask], minlength=self.k)
        return np.asarray(totals, np.float64)

    def extreme(
        self, values: FloatArray, mask: npt.NDArray[np.bool_], ufunc: np.ufunc
    ) -> FloatArray:
        start = np.inf if ufunc is np.minimum else -np.inf
        out = np.full(self.k, start)
        ufunc.at(out, self.inv[mask], values[mask])
        out[~np.isfinite(out)] = np.nan
        return out


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _weighted(
    g: _Groups, value: FloatArray, error: FloatArray, mask: np.ndarray
) -> tuple[FloatArray, FloatArray]:
    """Inverse-variance weighted mean and its error per group."""
    good = mask & np.isfinite(value) & (error > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(good, 1.0 / error**2, 0.0)
    sw = g.total(weight, good)
    return _ratio(g.total(weight * value, good), sw), _ratio(np.ones(g.k), np.sqrt(sw))


def _max_slope(g: _Groups, flux: FloatArray, mjd: FloatArray, mask: np.ndarray) -> FloatArray:
    """Largest ``|delta flux / delta t|`` (nJy/day) between consecutive observations."""
    rows = np.nonzero(mask & np.isfinite(flux))[0]
    order = rows[np.lexsort((mjd[rows], g.inv[rows]))]
    grp, f, t = g.inv[order], flux[order], mjd[order]
    dt = np.diff(t)
    ok = (grp[1:] == grp[:-1]) & (dt > 0)
    out = np.full(g.k, -np.inf)
    np.maximum.at(out, grp[1:][ok], np.abs(np.diff(f)[ok] / dt[ok]))
    out[~np.isfinite(out)] = np.nan
    return out


def _band(g: _Groups, src: dict[str, np.ndarray], band: str) -> dict[str, np.ndarray]:
    """The ``<band>_*`` psfFlux and scienceFlux summary columns."""
    in_band = src["band"] == band
    flux, err = src["psfFlux"], src["psfFluxErr"]
    finite = in_band & np.isfinite(flux)
    n = g.count(finite)
    mean_plain = _ratio(g.total(flux, finite), n)
    dev = np.where(finite, flux - mean_plain[g.inv], 0.0)
    psf_mean, psf_err = _weighted(g, flux, err, in_band)
    sci_mean, sci_err = _weighted(g, src["scienceFlux"], src["scienceFluxErr"], in_band)
    has_err = in_band & np.isfinite(err)
    return {
        f"{band}_psfFluxMean": psf_mean,
        f"{band}_psfFluxMeanErr": psf_err,
        f"{band}_psfFluxSigma": np.sqrt(_ratio(g.total(dev**2, finite), n - 1)),
        f"{band}_psfFluxNdata": n.astype(np.int32),
        f"{band}_psfFluxMin": g.extreme(flux, finite, np.minimum),
        f"{band}_psfFluxMax": g.extreme(flux, finite, np.maximum),
        f"{band}_psfFluxErrMean": _ratio(g.total(err, has_err), g.count(has_err)),
        f"{band}_psfFluxMaxSlope": _max_slope(g, flux, src["midpointMjdTai"], in_band),
        f"{band}_scienceFluxMean": sci_mean,
        f"{band}_scienceFluxMeanErr": sci_err,
    }


def _forced(ids: np.ndarray, forced: pandas.DataFrame) -> dict[str, np.ndarray]:
    """``<band>_fpFluxMean`` / ``MeanErr`` from forced sources of the objects ``ids``."""
    if len(forced) == 0:
        return {}
    fid = forced["diaObjectId"].to_numpy(np.int64)
    pos = np.clip(np.searchsorted(ids, fid), 0, len(ids) - 1)
    known = ids[pos] == fid
    g = _Groups(np.where(known, pos, 0), len(ids))
    band = forced["band"].to_numpy(object)
    flux = forced["psfFlux"].to_numpy(np.float64)
    err = forced["psfFluxErr"].to_numpy(np.float64)
    out: dict[str, np.ndarray] = {}
    for b in BANDS:
        mean, mean_err = _weighted(g, flux, err, known & (band == b))
        out[f"{b}_fpFluxMean"], out[f"{b}_fpFluxMeanErr"] = mean, mean_err
    return out


def _positions(g: _Groups, src: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mean position (mean unit vector) and the error of that mean (degrees)."""
    xyz = visitinfo.unit_vectors(src["ra"], src["dec"])
    every = np.ones(len(g.inv), bool)
    mean = np.stack([g.total(xyz[:, i], every) for i in range(3)], axis=1)
    n = g.count(every)
    norm = np.linalg.norm(mean, axis=1)
    out = {
        "ra": np.rad2deg(np.arctan2(mean[:, 1], mean[:, 0])) % 360.0,
        "dec": np.rad2deg(np.arcsin(np.clip(mean[:, 2] / norm, -1.0, 1.0))),
    }
    # Covariance of an unweighted mean of n positions: sum cov_i / n**2 (errors: its root).
    for name, var in (("raErr", src["raErr"] ** 2), ("decErr", src["decErr"] ** 2),
                      ("ra_dec_Cov", src["ra_dec_Cov"])):  # fmt: skip
        known = np.isfinite(var)
        total = np.where(g.count(known) == n, g.total(var, known), np.nan) / n**2
        out[name] = np.sqrt(total) if name != "ra_dec_Cov" else total
    return out


def summarize(sources: pandas.DataFrame, forced: pandas.DataFrame) -> pandas.DataFrame:
    """DiaObject summary columns for every object with at least one source.

    Parameters
    ----------
    sources : pandas.DataFrame
        APDB ``DiaSource`` rows (history and this visit) with ``diaObjectId, ra, dec, band,
        psfFlux, psfFluxErr, scienceFlux, scienceFluxErr, midpointMjdTai`` (fluxes in nJy,
        positions in degrees, times MJD TAI).
    forced : pandas.DataFrame
        APDB ``DiaForcedSource`` rows of the same objects (may be empty).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``diaObjectId`` (sorted): ``ra, dec, raErr, decErr, ra_dec_Cov``, per band
        ``<b>_psfFluxMean, <b>_psfFluxMeanErr, <b>_psfFluxSigma, <b>_psfFluxNdata,
        <b>_psfFluxMin, <b>_psfFluxMax, <b>_psfFluxErrMean, <b>_psfFluxMaxSlope,
        <b>_scienceFluxMean, <b>_scienceFluxMeanErr, <b>_fpFluxMean, <b>_fpFluxMeanErr``, and
        ``firstDiaSourceMjdTai, lastDiaSourceMjdTai``. Missing values are NaN;
        ``<b>_psfFluxNdata`` is 0 when absent.
    """
    frame = slim(sources, SOURCE_COLUMNS)
    src = {c: frame[c].to_numpy() for c in frame.columns}
    ids, inv = np.unique(src["diaObjectId"], return_inverse=True)
    g = _Groups(inv.astype(np.intp), len(ids))
    columns = _positions(g, src)
    for band in BANDS:
        columns.update(_band(g, src, band))
    if len(forced):
        columns.update(_forced(ids, slim(forced, FORCED_COLUMNS)))
    every = np.ones(len(inv), bool)
    columns["firstDiaSourceMjdTai"] = g.extreme(src["midpointMjdTai"], every, np.minimum)
    columns["lastDiaSourceMjdTai"] = g.extreme(src["midpointMjdTai"], every, np.maximum)
    return pandas.DataFrame(columns, index=pandas.Index(ids, name="diaObjectId"))
