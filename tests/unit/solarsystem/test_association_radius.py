"""Association inside each prediction's error circle: floor, sigma-scaled, capped."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table, vstack

from shutterline.solarsystem import associate as ssassoc
from tests.unit.alerts import example
from tests.unit.association import synthetic

RA, DEC = 150.0, 2.0


def _predictions(sigmas_arcsec: list[float]) -> Table:
    """One prediction per sigma, 1 degree apart in Dec, each at ``(RA, DEC + k)``."""
    rows = []
    for k, sigma in enumerate(sigmas_arcsec):
        row = example._predictions(RA, DEC + k)
        row["ss_object_id"] = [1000 + k]
        row["ra_err"] = row["dec_err"] = [sigma / 3600.0]
        rows.append(row)
    return vstack(rows)


@pytest.mark.parametrize(
    ("sigma", "offset", "matched"),
    [
        (0.05, 0.9, True),  # the 1" floor
        (0.05, 1.5, False),
        (1.0, 2.8, True),  # 3 sigma
        (1.0, 3.3, False),
        (20.0, 9.5, True),  # capped at 10"
        (20.0, 11.0, False),
    ],
)
def test_a_source_is_associated_only_inside_the_error_circle(
    sigma: float, offset: float, matched: bool
) -> None:
    pred = _predictions([sigma])
    dia = synthetic.dia_table(np.array([RA]), np.array([DEC + offset / 3600.0]), visit=1)
    dia["ra_err"] = dia["dec_err"] = 0.0
    ss = ssassoc.ssassociate(dia, pred)
    assert bool(dia["ss_object_id"][0] == 1000) is matched
    assert len(ss) == int(matched)


def test_the_sources_own_error_widens_its_circle() -> None:
    pred = _predictions([0.05])
    dia = synthetic.dia_table(np.array([RA]), np.array([DEC + 2.0 / 3600.0]), visit=1)
    dia["ra_err"] = dia["dec_err"] = 1.0 / 3600.0  # a faint source: 1" per axis
    ssassoc.ssassociate(dia, pred)
    assert dia["ss_object_id"][0] == 1000
