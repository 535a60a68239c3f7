"""What one detector of one visit needs, found with a handful of registry queries.

`plan_detector` is shared by the pre-cache (which transfers exactly these datasets) and by
`shutterline.butler.inputs.load_detector_inputs` (which reads them), so both modes see the
same inputs. Every ref it returns carries its dimension records, so a transfer needs no
further registry round trips to the source.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.time import Time
from lsst.daf.butler import Butler, DataCoordinate, DatasetRef, DimensionRecord, Timespan
from lsst.sphgeom import ConvexPolygon, LonLat

from shutterline import exceptions
from shutterline.butler import names, refcat, sspieces
from shutterline.skymap import rings
from shutterline.solarsystem import predict

__all__ = [
    "SS_PAD_DEG",
    "Announcement",
    "CalibMatch",
    "DetectorPlan",
    "padded_corners",
    "plan_announced",
    "plan_detector",
    "raws_of_exposures",
    "region_corners",
]

#: Padding of the footprint for solar-system pieces (degrees): the largest motion in a visit
#: (a fast NEO, 0.5 deg/h, moves under 0.05 deg in a few minutes) and the predicted
#: footprint's error, the same margin the pipeline's prediction circle has.
SS_PAD_DEG = 0.05


@dataclass(frozen=True)
class CalibMatch:
    """A calibration dataset and the validity range it is certified for."""

    ref: DatasetRef
    timespan: Timespan


@dataclass(frozen=True)
class Announcement:
    """What the next-visit announcement says of one detector of a visit, before its raw.

    ``mjd`` is the shutter opening (TAI); ``ra``, ``dec`` the boresight and ``rotation`` the
    focal plane's position angle from its orientation at rotation 0 (degrees).
    """

    visit: int
    detector: int
    band: str
    physical_filter: str
    ra: float
    dec: float
    rotation: float
    mjd: float
    exptime: float


@dataclass(frozen=True)
class DetectorPlan:
    """The datasets and records one detector's processing reads.

    ``corners`` is the detector footprint ``(4, 2)`` (ICRS degrees) from the raw WCS (or,
    planned from an announcement, predicted from the focal-plane layout), and ``padded`` the
    same grown by the padding, which selected templates and shards. ``ss_pieces`` are the
    nightly solar-system pieces of the exposure midpoint around the footprint and the night's
    orbit records of the same regions (none if the repository has no pieces for that time).
    A plan made from an announcement has no ``raw`` and no ``visit_data_id``: the raw does
    not exist yet.
    """

    visit: int
    detector: int
    band: str
    physical_filter: str
    mjd: float
    exptime: float
    boresight: tuple[float, float]
    corners: np.ndarray
    padded: np.ndarray
    visit_data_id: DataCoordinate | None
    raw: DatasetRef | None
    bias: CalibMatch
    flat: CalibMatch
    templates: list[tuple[rings.PatchInfo, DatasetRef]]
    refcat: list[DatasetRef]
    orbits: DatasetRef | None
    ss_pieces: list[DatasetRef]

    @property
    def refs(self) -> list[DatasetRef]:
        """Every dataset of the plan."""
        found = [self.bias.ref, self.flat.ref, *(r for _, r in self.templates), *self.refcat]
        found = ([self.raw] if self.raw is not None else []) + found
        return found + ([self.orbits] if self.orbits is not None else []) + self.ss_pieces


def region_corners(region: Any) -> np.ndarray:
    """Vertices ``(n, 2)`` ICRS degrees of a sphgeom ``ConvexPolygon``."""
    points = [LonLat(v) for v in region.getVertices()]
    return np.array([[p.getLon().asDegrees(), p.getLat().asDegrees()] for p in points])


def padded_corners(corners: np.ndarray, padding_arcsec: float) -> np.ndarray:
    """Corners ``(n, 2)`` degrees pushed away from their centre by ``padding_arcsec``.

    Every point of the polygon's outline moves out by at least the padding (a corner moves
    ``padding / sin(half angle)``), so the grown polygon holds the padded footprint.
    """
    ra0, dec0 = float(np.mean(corners[:, 0])), float(np.mean(corners[:, 1]))
    cosd = max(math.cos(math.radians(dec0)), 1e-6)
    dx = ((corners[:, 0] - ra0 + 180.0) % 360.0 - 180.0) * cosd
    dy = corners[:, 1] - dec0
    norm = np.maximum(np.hypot(dx, dy), 1e-12)
    grow = (norm + math.sqrt(2.0) * padding_arcsec / 3600.0) / norm
    return np.column_stack([(ra0 + dx * grow / cosd) % 360.0, np.clip(dec0 + dy * grow, -90, 90)])


def _visit_data_id(butler: Butler, visit: int, detector: int) -> DataCoordinate:
    data_id = {"instrument": names.INSTRUMENT, "visit": visit, "detector": detector}
    found = butler.query_data_ids(
        ["visit", "detector"], data_id=data_id, with_dimension_records=True, explain=False
    )
    region = found[0].records["visit_detector_region"] if found else None
    if region is None:
        raise exceptions.MissingInputError(
            names.RAW, data_id, "visit and detector not registered: was the raw ingested?"
        )
    return found[0]


def _one_ref(butler: Butler, dataset_type: str, collection: str, data_id: dict) -> DatasetRef:
    refs = butler.query_datasets(
        dataset_type,
        collections=collection,
        data_id=data_id,
        with_dimension_records=True,
        explain=False,
    )
    if not refs:
        raise exceptions.MissingInputError(dataset_type, data_id, f"not in {collection}")
    return refs[0]


def _find_calib(butler: Butler, name: str, data_id: dict, when: Timespan) -> CalibMatch:
    dataset_type = butler.get_dataset_type(name)
    with butler.query() as query:
        query = query.join_dataset_search(name, collections=[names.CALIB_COLLECTION])
        query = query.where(data_id, f"{name}.timespan OVERLAPS when", bind={"when": when})
        rows = list(
            query.general(
                dataset_type.dimensions,
                f"{name}.timespan",
                dataset_fields={name: ...},
                find_first=False,
            )
            .with_dimension_records()
            .iter_tuples(dataset_type)
        )
    if not rows:
        raise exceptions.MissingInputError(
            name,
            data_id,
            f"nothing in {names.CALIB_COLLECTION} valid at MJD {_begin_mjd(when):.5f}",
        )
    if len(rows) > 1:
        raise exceptions.MissingInputError(
            name, data_id, f"{len(rows)} certified datasets overlap {when}: ambiguous"
        )
    return CalibMatch(rows[0].refs[0], rows[0].raw_row[f"{name}.timespan"])


def _templates(
    butler: Butler, patches: list[rings.PatchInfo], band: str, skymap: rings.RingsSkyMap
) -> list[tuple[rings.PatchInfo, DatasetRef]]:
    if not patches:
        return []
    wanted = {(p.tract, p.patch): p for p in patches}
    refs = butler.query_datasets(
        names.TEMPLATE,
        collections=names.TEMPLATE_COLLECTION,
        where="skymap = sm AND band = b AND tract IN (tracts)",
        bind={"sm": skymap.name, "b": band, "tracts": sorted({p.tract for p in patches})},
        with_dimension_records=True,
        explain=False,
        limit=None,
    )
    found = {(r.dataId["tract"], r.dataId["patch"]): r for r in refs}
    return [(wanted[key], found[key]) for key in sorted(wanted) if key in found]


def _orbits(butler: Butler) -> DatasetRef | None:
    refs = butler.query_datasets(
        names.ORBITS, collections=names.ORBITS_COLLECTION, explain=False, limit=None
    )
    return refs[0] if refs else None


@dataclass(frozen=True)
class _Selected:
    """The inputs a footprint and an observation time select."""

    padded: np.ndarray
    bias: CalibMatch
    flat: CalibMatch
    templates: list[tuple[rings.PatchInfo, DatasetRef]]
    refcat: list[DatasetRef]
    orbits: DatasetRef | None
    ss_pieces: list[DatasetRef]

    def fields(self) -> dict[str, Any]:
        """The plan's fields these fill (shallow: refs are not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _select(
    butler: Butler,
    where: dict[str, Any],
    corners: np.ndarray,
    padding_arcsec: float,
    filters: tuple[str, str],
    when: Timespan,
    skymap: rings.RingsSkyMap,
    exptime: float,
) -> _Selected:
    """Calibrations valid ``when``, templates and shards around ``corners`` grown by the
    padding, and the orbits; ``where`` is ``{visit, detector}`` for error messages."""
    band, physical_filter = filters
    base = {"instrument": names.INSTRUMENT, "detector": where["detector"]}
    bias = _find_calib(butler, names.BIAS, base, when)
    flat = _find_calib(butler, names.FLAT, {**base, "physical_filter": physical_filter}, when)
    patches = skymap.patches_overlapping(corners[:, 0], corners[:, 1], padding_arcsec)
    templates = _templates(butler, patches, band, skymap)
    if not templates:
        raise exceptions.MissingInputError(
            names.TEMPLATE,
            {"skymap": skymap.name, "band": band, "patches": [(p.tract, p.patch) for p in patches]},
            "no template patch overlaps the detector footprint",
        )
    padded = padded_corners(corners, padding_arcsec)
    shards = refcat.shard_refs(butler, padded, with_dimension_records=True)
    if not shards:
        raise exceptions.MissingInputError(names.REFCAT, where, "no shard overlaps the footprint")
    pieces = _ss_pieces(butler, corners, _begin_mjd(when) + exptime / 2.0 / 86400.0)
    return _Selected(padded, bias, flat, templates, shards, _orbits(butler), pieces)


def _ss_pieces(butler: Butler, corners: np.ndarray, mid_mjd: float) -> list[DatasetRef]:
    """The solar-system pieces around the footprint at the exposure midpoint."""
    center, radius = predict.footprint_circle(corners, pad_arcsec=SS_PAD_DEG * 3600.0)
    return sspieces.find_pieces(butler, mid_mjd, center, radius)


def plan_detector(
    butler: Butler,
    visit: int,
    detector: int,
    padding_arcsec: float = 60.0,
    skymap: rings.RingsSkyMap = rings.SKYMAP,
) -> DetectorPlan:
    """Find every input of one detector of one visit whose raw is ingested (about seven
    registry queries).

    Raises
    ------
    shutterline.exceptions.MissingInputError
        No raw, no bias or flat valid at the observation time (or more than one), no
        template patch overlapping the padded footprint, or no reference-catalog shard.
    """
    # Collection records and summaries fetched once for all the queries, not once each.
    with butler.registry.caching_context():
        return _plan(butler, visit, detector, padding_arcsec, skymap)


def _plan(
    butler: Butler, visit: int, detector: int, padding_arcsec: float, skymap: rings.RingsSkyMap
) -> DetectorPlan:
    data_id = _visit_data_id(butler, visit, detector)
    visit_record: DimensionRecord = data_id.records["visit"]  # type: ignore[assignment]
    region = data_id.records["visit_detector_region"].region  # type: ignore[union-attr]
    corners = region_corners(region)
    filters = (str(data_id["band"]), str(data_id["physical_filter"]))
    when = Timespan.fromInstant(visit_record.timespan.begin)
    where = {"visit": visit, "detector": detector}
    raw = _one_ref(
        butler,
        names.RAW,
        names.RAW_COLLECTION,
        {"instrument": names.INSTRUMENT, "detector": detector, "exposure": visit},
    )
    exptime = float(visit_record.exposure_time)
    chosen = _select(butler, where, corners, padding_arcsec, filters, when, skymap, exptime)
    return DetectorPlan(
        visit=visit,
        detector=detector,
        band=filters[0],
        physical_filter=filters[1],
        mjd=_begin_mjd(visit_record.timespan),
        exptime=exptime,
        boresight=_boresight(region, raw),
        corners=corners,
        visit_data_id=data_id,
        raw=raw,
        **chosen.fields(),
    )


def plan_announced(
    butler: Butler,
    announced: Announcement,
    corners: np.ndarray,
    padding_arcsec: float = 60.0,
    skymap: rings.RingsSkyMap = rings.SKYMAP,
) -> DetectorPlan:
    """Every input of a detector whose raw does not exist yet, for a predicted footprint.

    ``corners`` (ICRS degrees, ``(n, 2)``) come from `shutterline.butler.footprint`;
    ``padding_arcsec`` should include the margin for the raw WCS error, so the inputs the
    raw's own footprint would select are among those chosen here.

    Raises
    ------
    shutterline.exceptions.MissingInputError
        As `plan_detector`, or the physical filter is not the instrument's.
    """
    filters = (announced.band, _physical_filter(butler, announced.band, announced.physical_filter))
    when = Timespan.fromInstant(Time(announced.mjd, format="mjd", scale="tai"))
    where = {"visit": announced.visit, "detector": announced.detector}
    chosen = _select(
        butler, where, corners, padding_arcsec, filters, when, skymap, announced.exptime
    )
    return DetectorPlan(
        visit=announced.visit,
        detector=announced.detector,
        band=announced.band,
        physical_filter=filters[1],
        mjd=announced.mjd,
        exptime=announced.exptime,
        boresight=(announced.ra, announced.dec),
        corners=np.asarray(corners, float),
        visit_data_id=None,
        raw=None,
        **chosen.fields(),
    )


def _physical_filter(butler: Butler, band: str, announced: str) -> str:
    """The registry's physical filter for an announced one: the same name, or else the one
    physical filter of the announced band (the instrument maps header filters to bands)."""
    records = butler.query_dimension_records(
        "physical_filter", instrument=names.INSTRUMENT, explain=False
    )
    by_name = {str(r.name): str(r.band) for r in records}
    if announced in by_name:
        if by_name[announced] != band:
            raise exceptions.PermanentError(
                f"physical filter {announced!r} is in band {by_name[announced]!r}, not {band!r}"
            )
        return announced
    of_band = sorted(name for name, b in by_name.items() if b == band)
    if len(of_band) != 1:
        raise exceptions.MissingInputError(
            "physical_filter",
            {"instrument": names.INSTRUMENT, "band": band, "announced": announced},
            f"the instrument has {len(of_band)} physical filters in this band: {of_band}",
        )
    return of_band[0]


def _begin_mjd(timespan: Timespan) -> float:
    begin = timespan.begin
    if not isinstance(begin, Time):
        raise ValueError(f"visit timespan {timespan} has no beginning")
    return float(begin.tai.mjd)


def _boresight(region: ConvexPolygon, raw: DatasetRef) -> tuple[float, float]:
    exposure = raw.dataId.records["exposure"]
    if exposure is not None and exposure.tracking_ra is not None:
        return float(exposure.tracking_ra), float(exposure.tracking_dec)
    centre = LonLat(region.getCentroid())
    return centre.getLon().asDegrees(), centre.getLat().asDegrees()


def raws_of_exposures(butler: Butler, exposure_ids: Any) -> list[DatasetRef]:
    """Every ingested raw of the given exposures, all detectors."""
    return list(
        butler.query_datasets(
            names.RAW,
            collections=names.RAW_COLLECTION,
            where="instrument = inst AND exposure IN (ids)",
            bind={"inst": names.INSTRUMENT, "ids": [int(i) for i in exposure_ids]},
            limit=None,
            explain=False,
        )
    )
