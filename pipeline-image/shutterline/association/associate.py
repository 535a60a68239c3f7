"""Stage 6: associate a detector's DIA sources with DIA objects in the APDB.

Call order in the detector driver (``dia_sources`` carries ``ss_object_id`` if stage 7 ran
first, as it should: asteroid detections then get no DIA object, as in Rubin's pipeline):

1. ``result = associate(dia_sources, apdb, info)`` - reads the APDB, writes nothing;
2. ``forced = forced.forced_photometry(difference, science, result.forced_targets())`` and
   ``result = attach_forced(result, forced)``;
3. build the packets from ``result.alert_inputs()`` (``alerts.build.build_packets``);
4. ``commit(result, apdb)`` - one transaction;
5. spool the packets.

Retries: a retry before step 4 committed recomputes everything (same ids: new objects take
the id of their first DIA source); a retry after it finds the detector in the APDB, writes
nothing, and reads its rows back, so its packets are byte-identical to the first attempt's.
"""

from __future__ import annotations

import hashlib

import lsst.sphgeom as sphgeom
import numpy as np
import pandas
from astropy.table import Table
from lsst.dax.apdb import ApdbTables

from shutterline import exceptions
from shutterline.association import apdb as apdb_mod
from shutterline.association import matching, records, result, summary, visitinfo

__all__ = ["associate", "attach_forced", "commit", "forced_source_id"]

#: How much earlier than this visit a source must be to count as history (days); guards
#: against float noise in stored midpoints.
_EPS_DAYS = 1e-6


def _objects_frame(res: result.AssociationResult) -> pandas.DataFrame:
    """``DiaObject`` rows of every object with a source in this visit, summaries updated."""
    current = res.sources[res.sources["diaObjectId"].notna()]
    if len(current) == 0:
        empty = {"diaObjectId": np.int64, "ra": np.float64, "dec": np.float64}
        return pandas.DataFrame({k: pandas.Series([], dtype=t) for k, t in empty.items()})
    current = current.astype({"diaObjectId": np.int64})
    # Narrow the wide APDB frames before concatenating: only the summary inputs matter.
    src_cols, fcd_cols = summary.SOURCE_COLUMNS, summary.FORCED_COLUMNS
    frames = [summary.slim(f, src_cols) for f in (res.history_sources, current) if len(f)]
    all_sources = pandas.concat(frames, ignore_index=True)
    forced = [summary.slim(f, fcd_cols) for f in (res.history_forced, res.forced_sources) if len(f)]
    all_forced = pandas.concat(forced, ignore_index=True) if forced else pandas.DataFrame()
    summ = summary.summarize(all_sources, all_forced).loc[current["diaObjectId"].to_numpy()]
    # nDiaSources counts every source ever, not only those inside the history window.
    prior = res.region_objects
    before = (
        prior.set_index("diaObjectId")["nDiaSources"] if len(prior) else pandas.Series(dtype=int)
    )
    counts = current.groupby("diaObjectId").size()
    n_before = before.reindex(counts.index).fillna(0).astype(np.int64)
    summ["nDiaSources"] = (n_before + counts).reindex(summ.index).to_numpy(np.int32)
    summ["validityStartMjdTai"] = res.info.mjd
    out = summ.reset_index()
    out["diaObjectId"] = out["diaObjectId"].astype(np.int64)
    return out


def _matchable(existing: pandas.DataFrame, mjd: float) -> pandas.DataFrame:
    """Objects a source of this visit may join: those last written before this visit.

    The APDB keys object versions by ``(diaObjectId, validityStartMjdTai)``, so an object
    another detector of the same visit just wrote (footprints that overlap, or padding
    across a gap) cannot take a second version at the same time; the source makes a new
    object instead, which nightly deduplication can merge. The same holds for objects a
    later visit wrote, when visits are processed out of order.
    """
    if len(existing) == 0:
        return existing
    return existing[existing["validityStartMjdTai"] < mjd - _EPS_DAYS]


def _history(
    apdb: apdb_mod.ApdbHandle, region: sphgeom.Region, ids: list[int], mjd: float
) -> tuple[pandas.DataFrame, pandas.DataFrame]:
    """Earlier sources and forced sources of ``ids``, strictly before ``mjd``."""
    src = apdb.sources_for_objects(region, ids, mjd)
    fcd = apdb.forced_sources_for_objects(region, ids, mjd)
    src = src[src["midpointMjdTai"] < mjd - _EPS_DAYS] if len(src) else src
    fcd = fcd[fcd["midpointMjdTai"] < mjd - _EPS_DAYS] if len(fcd) else fcd
    return src.reset_index(drop=True), fcd.reset_index(drop=True)


def _assign(
    frame: pandas.DataFrame, existing: pandas.DataFrame, radius_arcsec: float
) -> tuple[pandas.Series, int]:
    """``diaObjectId`` per source (nullable); the number matched to existing objects."""
    ss = frame["ssObjectId"].fillna(0).to_numpy() > 0 if "ssObjectId" in frame else None
    eligible = np.ones(len(frame), bool) if ss is None else ~ss
    ids = np.where(eligible, frame["diaSourceId"].to_numpy(np.int64), 0)
    n_matched = 0
    if len(existing) and eligible.any():
        idx, _ = matching.match_nearest(
            frame["ra"].to_numpy()[eligible],
            frame["dec"].to_numpy()[eligible],
            existing["ra"].to_numpy(),
            existing["dec"].to_numpy(),
            radius_arcsec,
        )
        hit = idx >= 0
        sub = ids[eligible]
        sub[hit] = existing["diaObjectId"].to_numpy(np.int64)[idx[hit]]
        ids[eligible] = sub
        n_matched = int(hit.sum())
    out = pandas.Series(ids, dtype="Int64")
    out[~eligible] = pandas.NA
    return out, n_matched


def associate(
    dia_sources: Table,
    apdb: apdb_mod.ApdbHandle,
    visit_info: visitinfo.VisitInfo,
    radius_arcsec: float = 1.0,
) -> result.AssociationResult:
    """Match DIA sources to DIA objects, create new objects, update summaries; no writes.

    Parameters
    ----------
    dia_sources : astropy.table.Table
        The differencing stage's table (``dia_source_id``, ``ra``, ``dec`` in degrees, fluxes
        in nJy, ...). Rows with ``ss_object_id > 0`` are solar-system sources and, as in
        Rubin's pipeline, get no DIA object. Not modified.
    apdb : ApdbHandle
        The open APDB.
    visit_info : VisitInfo
        Visit, detector, band, midpoint time and footprint; ``visit, detector, band, mjd``
        come from here, not from table columns.
    radius_arcsec : float
        Largest source-object separation of a match.

    Returns
    -------
    AssociationResult
    """
    info = visit_info
    if apdb.contains(info.visit, info.detector):
        return _read_back(dia_sources, apdb, info, radius_arcsec)
    fields = apdb.columns(ApdbTables.DiaSource)
    frame = records.dia_source_frame(dia_sources, info, fields, records.now_mjd_tai())
    frame = records.coerce(frame, apdb.dtypes(ApdbTables.DiaSource))
    region = info.region(pad_arcsec=2.0 * radius_arcsec)
    existing = apdb.objects_in_region(region)
    frame["diaObjectId"], n_matched = _assign(frame, _matchable(existing, info.mjd), radius_arcsec)
    matched = sorted(set(frame["diaObjectId"].dropna().astype(int)) & set(existing["diaObjectId"]))
    hist_src, hist_fcd = _history(apdb, region, matched, info.mjd)
    res = result.AssociationResult(
        info=info,
        dia_sources=_with_object_ids(dia_sources, frame),
        sources=frame,
        objects=pandas.DataFrame(),
        history_sources=hist_src,
        history_forced=hist_fcd,
        region_objects=existing,
        forced_sources=pandas.DataFrame(),
        n_matched=n_matched,
        n_new=int(frame["diaObjectId"].notna().sum()) - n_matched,
        dtypes=_dtypes(apdb),
    )
    res.objects = records.coerce(_objects_frame(res), res.dtypes["DiaObject"])
    return res


def _dtypes(apdb: apdb_mod.ApdbHandle) -> dict[str, dict[str, str]]:
    tables = (ApdbTables.DiaObject, ApdbTables.DiaForcedSource)
    return {t.name: apdb.dtypes(t) for t in tables}


def _with_object_ids(dia_sources: Table, frame: pandas.DataFrame) -> Table:
    out = dia_sources.copy(copy_data=False)
    out["dia_object_id"] = frame["diaObjectId"].fillna(0).to_numpy(np.int64)
    return out


def _read_back(
    dia_sources: Table,
    apdb: apdb_mod.ApdbHandle,
    info: visitinfo.VisitInfo,
    radius_arcsec: float,
) -> result.AssociationResult:
    """Rebuild the result of a committed attempt from the APDB, for identical alerts."""
    region = info.region(pad_arcsec=2.0 * radius_arcsec)
    stored = apdb.sources_in_region(region, info.mjd, since_mjd=info.mjd - 1e-3)
    mine = (stored["visit"] == info.visit) & (stored["detector"] == info.detector)
    stored = stored[mine].set_index("diaSourceId", drop=False)
    wanted = np.asarray(dia_sources["dia_source_id"], np.int64)
    missing = np.setdiff1d(wanted, stored.index.to_numpy())
    if len(missing):
        raise exceptions.PermanentError(
            f"APDB {apdb.url} already holds visit {info.visit} detector {info.detector} but not "
            f"DIA sources {missing[:5].tolist()}: this run measured different sources"
        )
    frame = stored.loc[wanted].reset_index(drop=True)
    frame["diaObjectId"] = frame["diaObjectId"].astype("Int64")
    ids = sorted(set(frame["diaObjectId"].dropna().astype(int)))
    existing = apdb.objects_in_region(region)
    objects = existing[existing["diaObjectId"].isin(ids)].reset_index(drop=True)
    hist_src, hist_fcd = _history(apdb, region, ids, info.mjd)
    return result.AssociationResult(
        info=info,
        dia_sources=_with_object_ids(dia_sources, frame),
        sources=frame,
        objects=objects,
        history_sources=hist_src,
        history_forced=hist_fcd,
        region_objects=existing,
        forced_sources=pandas.DataFrame(),
        already_stored=True,
        dtypes=_dtypes(apdb),
    )


def forced_source_id(dia_object_id: int, visit: int, detector: int) -> int:
    """Deterministic 63-bit ``diaForcedSourceId`` of one object in one visit and detector."""
    digest = hashlib.blake2b(f"{dia_object_id}:{visit}:{detector}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1


def attach_forced(res: result.AssociationResult, forced: Table) -> result.AssociationResult:
    """Add this visit's forced photometry and fold it into the object summaries.

    Parameters
    ----------
    res : AssociationResult
    forced : astropy.table.Table
        From `shutterline.association.forced.forced_photometry`: ``dia_object_id, ra, dec,
        psf_flux, psf_flux_err, science_flux, science_flux_err`` (nJy).
    """
    if res.already_stored:
        return res
    info = res.info
    oid = np.asarray(forced["dia_object_id"], np.int64)
    frame = pandas.DataFrame(
        {
            "diaForcedSourceId": [forced_source_id(o, info.visit, info.detector) for o in oid],
            "diaObjectId": oid,
            "ra": np.asarray(forced["ra"], np.float64),
            "dec": np.asarray(forced["dec"], np.float64),
            "visit": np.full(len(oid), info.visit, np.int64),
            "detector": np.full(len(oid), info.detector, np.int16),
            "psfFlux": np.asarray(forced["psf_flux"], np.float32),
            "psfFluxErr": np.asarray(forced["psf_flux_err"], np.float32),
            "scienceFlux": np.asarray(forced["science_flux"], np.float32),
            "scienceFluxErr": np.asarray(forced["science_flux_err"], np.float32),
            "midpointMjdTai": np.full(len(oid), info.mjd),
            "band": np.full(len(oid), info.band, object),
            "timeProcessedMjdTai": np.full(len(oid), records.now_mjd_tai()),
        }
    )
    frame = records.coerce(frame, res.dtypes.get("DiaForcedSource", {}))
    out = result.AssociationResult(**{**vars(res), "forced_sources": frame, "_cache": {}})
    out.objects = records.coerce(_objects_frame(out), res.dtypes.get("DiaObject", {}))
    return out


def commit(res: result.AssociationResult, apdb: apdb_mod.ApdbHandle) -> bool:
    """Write the detector's objects, sources and forced sources in one transaction.

    Returns False (and writes nothing) for a retry whose first attempt committed.
    """
    if res.already_stored:
        return False
    objects = res.objects[
        [c for c in res.objects.columns if c in apdb.columns(ApdbTables.DiaObject)]
    ]
    return apdb.store(res.info, objects, res.sources, res.forced_sources)
