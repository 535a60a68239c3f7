"""``AssociationResult``: one detector's association, kept in memory until the APDB write."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pandas
from astropy.table import Table

from shutterline.association import records, visitinfo

__all__ = ["AlertInputs", "AssociationResult"]


class AlertInputs(NamedTuple):
    """What one alert packet needs from association (records use schema field names)."""

    dia_source: dict[str, Any]
    dia_object: dict[str, Any] | None
    prv_dia_sources: list[dict[str, Any]]
    prv_dia_forced_sources: list[dict[str, Any]]


def _group_records(
    frame: pandas.DataFrame, drop: tuple[str, ...]
) -> dict[int, list[dict[str, Any]]]:
    """Records grouped by ``diaObjectId``, each group in time order."""
    if len(frame) == 0:
        return {}
    ordered = frame.sort_values(["diaObjectId", "midpointMjdTai"], kind="stable")
    out: dict[int, list[dict[str, Any]]] = {}
    for rec in records.frame_records(ordered, drop=drop):
        out.setdefault(int(rec["diaObjectId"]), []).append(rec)
    return out


#: APDB bookkeeping columns that are not alert schema fields.
_SOURCE_EXTRA = ("pixelId", "ssObjectReassocTimeMjdTai")
_OBJECT_EXTRA = ("pixelId", "validityEndMjdTai")


@dataclasses.dataclass
class AssociationResult:
    """The outcome of `shutterline.association.associate.associate` for one detector.

    Attributes
    ----------
    info : VisitInfo
        The visit and detector.
    dia_sources : astropy.table.Table
        The input table with ``dia_object_id`` added (int64, 0 for a source associated with a
        solar-system object instead, as Rubin does).
    sources : pandas.DataFrame
        APDB ``DiaSource`` rows of this detector, in input order.
    objects : pandas.DataFrame
        APDB ``DiaObject`` rows to write: every object with a source in this visit, its
        summaries updated (``nDiaSources``, mean position, per-band fluxes, ...).
    history_sources, history_forced : pandas.DataFrame
        Earlier ``DiaSource`` / ``DiaForcedSource`` rows of those objects (before this visit).
    region_objects : pandas.DataFrame
        Objects in the padded footprint before this visit (forced photometry targets).
    forced_sources : pandas.DataFrame
        This visit's ``DiaForcedSource`` rows (empty until ``attach_forced``).
    n_matched, n_new : int
        Sources matched to existing objects, and new objects created.
    dtypes : dict
        APDB column dtypes per table name (``DiaObject``, ``DiaForcedSource``), so rows built
        later (`attach_forced`) take the types the database will return.
    already_stored : bool
        True when the APDB already held this visit and detector (a retry after a committed
        attempt): the rows above were read back from it and nothing will be written.
    """

    info: visitinfo.VisitInfo
    dia_sources: Table
    sources: pandas.DataFrame
    objects: pandas.DataFrame
    history_sources: pandas.DataFrame
    history_forced: pandas.DataFrame
    region_objects: pandas.DataFrame
    forced_sources: pandas.DataFrame
    already_stored: bool = False
    n_matched: int = 0
    n_new: int = 0
    dtypes: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict, repr=False)
    _cache: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    def forced_targets(self) -> Table:
        """``dia_object_id, ra, dec`` of every object to measure by forced photometry.

        The objects already in the footprint plus this visit's new ones; positions are the
        updated means where this visit changed them.
        """
        frames = [self.region_objects[["diaObjectId", "ra", "dec"]]]
        if len(self.objects):
            frames.append(self.objects[["diaObjectId", "ra", "dec"]])
        both = (
            pandas.concat([f for f in frames if len(f)], ignore_index=True)
            if any(len(f) for f in frames)
            else pandas.DataFrame({"diaObjectId": [], "ra": [], "dec": []})
        )
        last = both.drop_duplicates("diaObjectId", keep="last").sort_values("diaObjectId")
        return Table(
            {
                "dia_object_id": last["diaObjectId"].to_numpy(np.int64),
                "ra": last["ra"].to_numpy(np.float64),
                "dec": last["dec"].to_numpy(np.float64),
            }
        )

    def _lookups(self) -> dict[str, Any]:
        if not self._cache:
            objs = records.frame_records(self.objects, drop=_OBJECT_EXTRA)
            self._cache["objects"] = {int(o["diaObjectId"]): o for o in objs}
            self._cache["prv"] = _group_records(self.history_sources, _SOURCE_EXTRA)
            self._cache["prv_forced"] = _group_records(self.history_forced, ())
        return self._cache

    def alert_inputs(self) -> Iterator[AlertInputs]:
        """Per DIA source, in input order: the source, its object and that object's history."""
        look = self._lookups()
        for src in records.frame_records(self.sources, drop=_SOURCE_EXTRA):
            oid = src.get("diaObjectId")
            if oid is None:
                yield AlertInputs(src, None, [], [])
                continue
            yield AlertInputs(
                src,
                look["objects"].get(int(oid)),
                look["prv"].get(int(oid), []),
                look["prv_forced"].get(int(oid), []),
            )
