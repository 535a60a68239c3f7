"""Stage 7 (second half): associate DIA sources with predicted solar-system positions.

Each prediction takes at most one DIA source and each source at most one prediction, closest
pairs first, within the match radius. The matched pairs become ``ssSource`` rows (alert
schema field names); the DIA source table gets ``ss_object_id`` (0 where unmatched, the
convention of Rubin's earlier schemas), which the DIA object association then honours by
giving those sources no DIA object.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from shutterline.association import matching
from shutterline.solarsystem import predict

__all__ = ["ss_source_records", "ssassociate"]

FloatArray = npt.NDArray[np.float64]

#: au/day -> km/s (the ssSource schema gives velocities and range rates in km/s).
KM_S_PER_AU_DAY = 149_597_870.7 / 86_400.0


def _offsets(
    ra: FloatArray, dec: FloatArray, pra: FloatArray, pdec: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Observed minus predicted, arcsec: (RA including cos dec, Dec)."""
    dra = ((ra - pra + 180.0) % 360.0 - 180.0) * np.cos(np.deg2rad(pdec))
    return dra * 3600.0, (dec - pdec) * 3600.0


def _xyz(ra: FloatArray, dec: FloatArray) -> FloatArray:
    r, d = np.deg2rad(ra), np.deg2rad(dec)
    return np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], axis=-1)


def ssassociate(
    dia_sources: Table,
    predictions: Table,
    radius_arcsec: float = 1.0,
    n_sigma: float = 3.0,
    max_radius_arcsec: float = 10.0,
) -> Table:
    """Match DIA sources to predictions; return ssSource rows, set ``ss_object_id``.

    A source is associated when it lies inside its prediction's error circle: ``n_sigma``
    times the prediction's 1-sigma error (``ra_err``, from the orbit's quality) and the
    source's own (``ra_err``) in quadrature, never less than ``radius_arcsec``
    (astrometry and the two-body model) nor more than ``max_radius_arcsec`` (a poorly known
    orbit must not claim whatever lies near its prediction).

    Parameters
    ----------
    dia_sources : astropy.table.Table
        ``dia_source_id, ra, dec`` (degrees) at least. Gains (or has overwritten) the int64
        column ``ss_object_id``: the matched object's id, 0 where none.
    predictions : astropy.table.Table
        From `shutterline.solarsystem.predict.predict_visit` or ``predict_from_lookup``.
    radius_arcsec, n_sigma, max_radius_arcsec : float
        The floor, the width in sigmas and the cap of the match radius.

    Returns
    -------
    astropy.table.Table
        One row per match with the ``ssSource`` fields of the alert schema (``diaSourceId,
        ssObjectId, designation, eclLambda, eclBeta, galLon, galLat, elongation, phaseAngle,
        topoRange, topoRangeRate, helioRange, helioRangeRate, ephRa, ephDec, ephVmag,
        ephRate, ephRateRa, ephRateDec, ephOffset, ephOffsetRa, ephOffsetDec,
        ephOffsetAlongTrack, ephOffsetCrossTrack, helio_*, topo_*, diaDistanceRank``), and
        the ``mpc_*`` orbit columns when the predictions carry them.
        Units as the APDB schema gives them: angles in degrees, on-sky rates in deg/day,
        offsets in arcsec, distances in au, velocities and range rates in km/s.
    """
    dia_sources["ss_object_id"] = np.zeros(len(dia_sources), np.int64)
    if len(predictions) == 0:
        return Table()
    idx, sep = _match(dia_sources, predictions, n_sigma, (radius_arcsec, max_radius_arcsec))
    hit = np.nonzero(idx >= 0)[0]
    ids = np.zeros(len(dia_sources), np.int64)
    ids[hit] = np.asarray(predictions["ss_object_id"], np.int64)[idx[hit]]
    dia_sources["ss_object_id"] = ids
    return _ss_table(
        dia_sources[hit],
        predictions[idx[hit]],
        sep[hit],
        _ranks(dia_sources, predictions, idx, hit),
    )


def _match(
    dia_sources: Table, predictions: Table, n_sigma: float, bounds: tuple[float, float]
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Each source's prediction (-1 for none) inside its error circle, and the distance (")."""
    pred_err, src_err = _errors_arcsec(dia_sources, predictions)
    widest = np.clip(n_sigma * np.hypot(pred_err.max(), src_err.max(initial=0.0)), *bounds)
    idx, sep = matching.match_nearest(
        dia_sources["ra"], dia_sources["dec"], predictions["ra"], predictions["dec"], widest
    )
    limit = np.clip(n_sigma * np.hypot(pred_err[np.maximum(idx, 0)], src_err), *bounds)
    idx[(idx >= 0) & ~(sep <= limit)] = -1
    return idx, sep


def _errors_arcsec(dia_sources: Table, predictions: Table) -> tuple[FloatArray, FloatArray]:
    """1-sigma errors (arcsec) of each prediction and of each source (0 if it has none)."""
    pred_err = np.asarray(predictions["ra_err"], np.float64) * 3600.0
    src_err = np.zeros(len(dia_sources))
    if "ra_err" in dia_sources.colnames:
        values = np.ma.filled(np.ma.asarray(dia_sources["ra_err"], np.float64), np.nan)
        src_err = np.where(np.isfinite(values), values * 3600.0, 0.0)
    return pred_err, np.asarray(src_err, np.float64)


def _ranks(
    dia_sources: Table, predictions: Table, idx: npt.NDArray[np.int64], hit: npt.NDArray[np.int64]
) -> npt.NDArray[np.int32]:
    """``diaDistanceRank``: 1 + how many sources lie closer to the prediction than the match."""
    src = _xyz(np.asarray(dia_sources["ra"], float), np.asarray(dia_sources["dec"], float))
    pred = _xyz(
        np.asarray(predictions["ra"], float)[idx[hit]],
        np.asarray(predictions["dec"], float)[idx[hit]],
    )
    # (m, n) chord distances: m matches (a few) against every source of the detector.
    dist = np.linalg.norm(pred[:, None, :] - src[None, :, :], axis=2)
    matched = dist[np.arange(len(hit)), hit]
    return (1 + np.sum(dist < matched[:, None], axis=1)).astype(np.int32)


def _ss_table(
    src: Table, pred: Table, sep_arcsec: FloatArray, rank: npt.NDArray[np.int32]
) -> Table:
    ra, dec = np.asarray(src["ra"], float), np.asarray(src["dec"], float)
    coord = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs")
    ecl = coord.barycentricmeanecliptic
    gal = coord.galactic
    off_ra, off_dec = _offsets(ra, dec, np.asarray(pred["ra"]), np.asarray(pred["dec"]))
    rate_ra, rate_dec = np.asarray(pred["rate_ra"]), np.asarray(pred["rate_dec"])
    rate = np.hypot(rate_ra, rate_dec)
    with np.errstate(invalid="ignore", divide="ignore"):
        along = (off_ra * rate_ra + off_dec * rate_dec) / rate
        cross = (off_dec * rate_ra - off_ra * rate_dec) / rate
    out = Table()
    out["diaSourceId"] = np.asarray(src["dia_source_id"], np.int64)
    out["ssObjectId"] = np.asarray(pred["ss_object_id"], np.int64)
    out["designation"] = pred["designation"]
    out["eclLambda"], out["eclBeta"] = ecl.lon.deg, ecl.lat.deg
    out["galLon"], out["galLat"] = gal.l.deg, gal.b.deg
    out["elongation"], out["phaseAngle"] = pred["elongation"], pred["phase_angle"]
    kms = KM_S_PER_AU_DAY
    out["topoRange"] = pred["topo_range"]
    out["topoRangeRate"] = np.asarray(pred["topo_range_rate"]) * kms
    out["helioRange"] = pred["helio_range"]
    out["helioRangeRate"] = np.asarray(pred["helio_range_rate"]) * kms
    out["ephRa"], out["ephDec"], out["ephVmag"] = pred["ra"], pred["dec"], pred["v_mag"]
    out["ephRate"], out["ephRateRa"], out["ephRateDec"] = rate, rate_ra, rate_dec
    out["ephOffset"] = sep_arcsec
    out["ephOffsetRa"], out["ephOffsetDec"] = off_ra, off_dec
    out["ephOffsetAlongTrack"], out["ephOffsetCrossTrack"] = along, cross
    for prefix in ("helio", "topo"):
        for axis in "xyz":
            out[f"{prefix}_{axis}"] = pred[f"{prefix}_{axis}"]
        v = [np.asarray(pred[f"{prefix}_v{a}"]) * kms for a in "xyz"]
        for axis, values in zip("xyz", v, strict=True):
            out[f"{prefix}_v{axis}"] = values
        out[f"{prefix}_vtot"] = np.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    out["diaDistanceRank"] = rank
    for name in pred.colnames:
        if name.startswith(predict.MPC_PREFIX):
            out[name] = pred[name]
    return out


def ss_source_records(ss_sources: Table) -> dict[int, dict[str, object]]:
    """ssSource rows keyed by ``diaSourceId``, as dicts for `alerts.packet.build_alert`.

    A row with ``mpc_*`` columns gets them, unprefixed, as its ``mpc_orbits`` record.
    """
    prefix = predict.MPC_PREFIX
    orbit = [n for n in ss_sources.colnames if n.startswith(prefix)]
    names = [n for n in ss_sources.colnames if not n.startswith(prefix)]
    out: dict[int, dict[str, object]] = {}
    for row in ss_sources:
        record: dict[str, object] = {n: row[n] for n in names}
        if orbit:
            record["mpc_orbits"] = {n[len(prefix) :]: _plain(row[n]) for n in orbit}
        out[int(row["diaSourceId"])] = record
    return out


def _plain(value: object) -> object:
    """Designations are stored as ASCII bytes; the schema wants text."""
    return value.decode() if isinstance(value, bytes) else value
