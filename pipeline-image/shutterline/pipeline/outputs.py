"""Stages 6-8 and the writes: solar system, association, alerts, APDB, spool, products."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from typing import TYPE_CHECKING, Any

from shutterline.alerts import build as alert_build
from shutterline.alerts import spool as alert_spool
from shutterline.association import apdb as apdb_mod
from shutterline.association import associate as assoc
from shutterline.association import forced, visitinfo
from shutterline.pipeline import settings as settings_mod
from shutterline.solarsystem import associate as ss_assoc
from shutterline.solarsystem import lookup, predict
from shutterline.telemetry import stages

if TYPE_CHECKING:
    from shutterline.butler.inputs import DetectorInputs
    from shutterline.pipeline import detector

__all__ = ["start_predictions", "write_outputs"]

log = logging.getLogger(__name__)

#: Half-diagonal of a 2048 x 4096 detector at 0.263"/px is ~0.085 deg; predictions use a
#: margin so an object near an edge is not missed.
_PREDICT_RADIUS_PAD_DEG = 0.05


@functools.cache
def _executor() -> concurrent.futures.ThreadPoolExecutor:
    """The one prediction thread, started by the first detector that needs it (not at import:
    importing this module must not start threads, e.g. in a process that only lists help)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ss")


def start_predictions(inputs: DetectorInputs) -> concurrent.futures.Future[Any] | None:
    """Predict known asteroids for this detector in a thread while the image stages run.

    Everything it needs (pieces or orbits, time, pointing) is known before the raw arrives;
    the prediction circle surrounds the footprint that selected the inputs (raw WCS). The
    nightly pieces, when pre-cached, are used in preference to propagating the orbit table.
    """
    mjd_mid = inputs.mjd + inputs.exptime / 2.0 / 86400.0
    center, radius = _detector_circle(inputs)
    if inputs.ss_pieces:
        return _executor().submit(_from_pieces, inputs.ss_pieces, mjd_mid, center, radius)
    if inputs.orbits is None or len(inputs.orbits) == 0:
        return None
    return _executor().submit(predict.predict_visit, inputs.orbits, mjd_mid, center, radius)


def _from_pieces(pieces: list[Any], mjd: float, center: tuple[float, float], radius: float) -> Any:
    """Known objects from the nightly pieces (the whole catalogue, precomputed), described."""
    return predict.predict_from_lookup(lookup.lookup_pieces(pieces, center, radius, mjd), mjd)


def _detector_circle(inputs: DetectorInputs) -> tuple[tuple[float, float], float]:
    """A circle around the detector footprint the inputs were selected with."""
    return predict.footprint_circle(inputs.footprint, pad_arcsec=_PREDICT_RADIUS_PAD_DEG * 3600.0)


def write_outputs(
    settings: settings_mod.Settings,
    outputs: detector.DetectorOutputs,
    predictions: concurrent.futures.Future[Any] | None,
    rec: stages.StageRecorder,
) -> list[str]:
    """Associate, build every packet, commit the APDB, then spool the packets.

    Nothing reaches the spool until the APDB commit succeeded; a retry of the same detector
    finds its sources stored, skips the commit and rewrites the same packets under the same
    names (deterministic ids), so a consumer never sees a second alert for a source.
    """
    calexp, dia_sources = outputs.calexp, outputs.dia_sources
    info = visitinfo.VisitInfo.from_exposure(calexp)
    with rec.stage("solar_system"):
        ss_records: dict[int, Any] = {}
        if predictions is not None:
            ss = ss_assoc.ssassociate(dia_sources, predictions.result())
            ss_records = ss_assoc.ss_source_records(ss)
            rec.emit("ss_sources", len(ss))
    with rec.stage("association"):
        db = apdb_mod.open_apdb(settings.apdb, create=False)
        res = assoc.associate(dia_sources, db, info)
        targets = res.forced_targets()
        res = assoc.attach_forced(
            res, forced.forced_photometry(outputs.difference, calexp, targets)
        )
        rec.emit("dia_objects_new", res.n_new)
    with rec.stage("alerts"):
        packets = alert_build.build_packets(
            res.alert_inputs(), ss_records, outputs.difference, calexp, outputs.template
        )
        rec.emit("alerts", len(packets))
    with rec.stage("store"):
        assoc.commit(res, db)
        spool = alert_spool.AlertSpool(settings.spool)
        paths = spool.write_many(
            [(p.alert_id, p.payload) for p in packets], visit=info.visit, detector=info.detector
        )
    return [str(p) for p in paths]
