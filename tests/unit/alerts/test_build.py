"""``build_packets``: one valid packet per input, cutouts centred, missing template is null."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits

from shutterline.alerts import build, serialize
from shutterline.association import result
from tests.unit.association import synthetic


def _source(i: int, x: float, y: float, ra: float, dec: float) -> dict:
    return {
        "diaSourceId": 1000 + i,
        "visit": 1,
        "detector": 2,
        "midpointMjdTai": 60000.5,
        "ra": ra,
        "dec": dec,
        "x": x,
        "y": y,
        "psfNdata": 0,
        "trailNdata": 0,
        "dipoleNdata": 0,
        "timeProcessedMjdTai": 60000.6,
        "bboxSize": 11,
        "psfFlux": 1234.5,
    }


def test_packets_without_template_have_null_template_cutouts():
    x, y = np.array([30.0, 70.2]), np.array([40.0, 10.7])
    exp = synthetic.make_exposure((80, 90), x, y, np.array([2e3, 2e3]))
    ra, dec = exp.wcs.all_pix2world(x, y, 0)
    inputs = [
        result.AlertInputs(_source(i, x[i], y[i], float(ra[i]), float(dec[i])), None, [], [])
        for i in range(2)
    ]
    ss = {1001: {"diaSourceId": 1001, "ssObjectId": 5, "eclLambda": 1.0, "eclBeta": 2.0,
                 "galLon": 3.0, "galLat": 4.0}}  # fmt: skip
    packets = build.build_packets(inputs, ss, exp, exp, None)
    schema = serialize.load_schema()
    assert [p.alert_id for p in packets] == [1000, 1001]
    for p in packets:
        assert schema.packet_schema.validate(p.alert)
        assert serialize.from_wire(p.payload, schema) == p.alert
        assert p.alert["cutoutTemplate"] is None
        with fits.open(io.BytesIO(p.alert["cutoutScience"])) as hdul:
            image = hdul["IMAGE"].data
            peak = np.unravel_index(np.nanargmax(image), image.shape)
            assert abs(peak[0] - 15) <= 1 and abs(peak[1] - 15) <= 1
    assert packets[0].alert["ssSource"] is None
    assert packets[1].alert["ssSource"]["ssObjectId"] == 5
