"""A small end-to-end run of stages 6-8 on synthetic data, shared by the alert tests.

Two visits of one 300 x 300 detector: each has point sources of known flux on a difference
image; visit 2 re-detects visit 1's sources, so its alerts carry history; one source of
visit 2 sits on a predicted asteroid position.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.table import Table

from shutterline.alerts import build
from shutterline.association import apdb, associate, forced, visitinfo
from shutterline.images import Exposure
from tests.unit.association import synthetic

__all__ = ["Run", "run_visit"]

SHAPE = (300, 300)
X = np.array([40.0, 120.5, 200.2, 260.7, 150.0])
Y = np.array([50.0, 220.3, 80.8, 260.1, 150.0])


@dataclasses.dataclass
class Run:
    result: object
    alerts: list[dict]
    difference: Exposure


def _exposure(visit: int, mjd: float, flux: np.ndarray, seed: int) -> Exposure:
    exp = synthetic.make_exposure(SHAPE, X, Y, flux, noise=5.0, njy_per_unit=2.0, seed=seed)
    exp.metadata.update({"VISIT": visit, "DETECTOR": 7, "BAND": "r", "MJD": mjd, "EXPTIME": 30.0})
    return exp


def _predictions(ra: float, dec: float) -> Table:
    """One predicted asteroid at ``(ra, dec)``, with the columns ``predict_visit`` gives."""
    cols = {
        "ss_object_id": [424242],
        "designation": ["2026 AB1"],
        "ra": [ra],
        "dec": [dec],
        "ra_err": [0.2 / 3600],
        "dec_err": [0.2 / 3600],
        "rate_ra": [0.2],
        "rate_dec": [-0.05],
        "topo_range": [1.5],
        "helio_range": [2.4],
        "topo_range_rate": [0.001],
        "helio_range_rate": [0.0002],
        "phase_angle": [12.0],
        "elongation": [150.0],
        "v_mag": [20.1],
    }
    for prefix in ("helio", "topo"):
        for name in ("x", "y", "z", "vx", "vy", "vz"):
            cols[f"{prefix}_{name}"] = [0.5]
    return Table(cols)


def run_visit(handle: apdb.ApdbHandle, visit: int, mjd: float, with_asteroid: bool) -> Run:
    """Stages 6-8 for one visit; returns the association result and the alert dicts."""
    from shutterline.solarsystem import associate as ssassoc

    flux = np.full(len(X), 3000.0) * visit
    diff = _exposure(visit, mjd, flux, seed=visit)
    sci = _exposure(visit, mjd, flux + 2000.0, seed=10 + visit)
    tpl = _exposure(visit, mjd, np.full(len(X), 2000.0), seed=20 + visit)
    info = visitinfo.VisitInfo.from_exposure(diff)
    ra, dec = diff.wcs.all_pix2world(X, Y, 0)
    table = synthetic.dia_table(ra, dec, visit=visit, flux=2.0 * flux, seed=visit)
    table["x"], table["y"] = X.astype(np.float32), Y.astype(np.float32)
    ss_rows: dict[int, dict[str, object]] = {}
    if with_asteroid:
        ss = ssassoc.ssassociate(table, _predictions(ra[-1], dec[-1]), radius_arcsec=1.0)
        ss_rows = ssassoc.ss_source_records(ss)
    res = associate.associate(table, handle, info)
    res = associate.attach_forced(res, forced.forced_photometry(diff, sci, res.forced_targets()))
    packets = build.build_packets(res.alert_inputs(), ss_rows, diff, sci, tpl)
    alerts = [p.alert for p in packets]
    associate.commit(res, handle)
    return Run(res, alerts, diff)
