"""Alert packets: valid against lsst-alert-packet's schema, round-trip through fastavro."""

from __future__ import annotations

import io
import shutil

import fastavro
import numpy as np
import pytest
from astropy.io import fits

from shutterline.alerts import packet, serialize
from shutterline.association import apdb
from tests.unit.alerts import example


@pytest.fixture(scope="module")
def two_visits(apdb_template, tmp_path_factory):
    path = tmp_path_factory.mktemp("packet") / "apdb.sqlite3"
    shutil.copy(apdb_template, path)
    handle = apdb.open_apdb(path)
    first = example.run_visit(handle, 1, 60000.1, with_asteroid=False)
    second = example.run_visit(handle, 2, 60001.1, with_asteroid=True)
    return first, second


def test_every_alert_validates_with_lsst_alert_packet(two_visits):
    schema = serialize.load_schema()
    assert schema.version == "11.1" and schema.id == 1101
    for run in two_visits:
        for alert in run.alerts:
            assert schema.packet_schema.validate(alert)


def test_every_alert_round_trips_through_fastavro(two_visits):
    schema = serialize.load_schema()
    for run in two_visits:
        for alert in run.alerts:
            wire = serialize.to_wire(alert, schema)
            assert wire[0] == 0 and int.from_bytes(wire[1:5], "big") == 1101
            parsed = fastavro.parse_schema(schema.packet_schema.definition)
            back = fastavro.schemaless_reader(io.BytesIO(wire[5:]), parsed)
            assert back == alert


def test_second_visit_alert_carries_previous_source_and_forced_source(two_visits):
    first, second = two_visits
    first_ids = [a["diaSourceId"] for a in first.alerts]
    for i, alert in enumerate(second.alerts[:-1]):  # the last one is the asteroid
        prv = alert["prvDiaSources"]
        assert [p["diaSourceId"] for p in prv] == [first_ids[i]]
        assert alert["diaObject"]["diaObjectId"] == first_ids[i]
        assert alert["diaObject"]["nDiaSources"] == 2
        assert [f["visit"] for f in alert["prvDiaForcedSources"]] == [1]
        # Visit 1 injected 6000 nJy at every position.
        forced_flux = alert["prvDiaForcedSources"][0]["psfFlux"]
        assert forced_flux == pytest.approx(6000.0, abs=5 * 200)


def test_asteroid_alert_has_ss_source_and_no_object(two_visits):
    alert = two_visits[1].alerts[-1]
    assert alert["ssSource"]["ssObjectId"] == 424242
    assert alert["diaSource"]["ssObjectId"] == 424242
    assert alert["diaObject"] is None and alert["prvDiaSources"] is None
    assert alert["ssSource"]["ephOffset"] < 0.1


def test_first_visit_alerts_have_cutouts_and_no_history(two_visits):
    for alert in two_visits[0].alerts:
        assert alert["prvDiaSources"] is None
        for field in ("cutoutDifference", "cutoutScience", "cutoutTemplate"):
            assert alert[field][:6] == b"SIMPLE"


def test_missing_required_field_is_named():
    source = {"diaSourceId": 1, "visit": 1, "detector": 1, "midpointMjdTai": 1.0, "ra": 1.0}
    with pytest.raises(ValueError, match=r"diaSource\.dec"):
        packet.build_alert(source, None, None, None, None, None)


def test_nan_becomes_null_and_floats_are_float32(two_visits):
    item = next(iter(two_visits[0].result.alert_inputs()))
    source = dict(item.dia_source, psfFlux=float("nan"), apFlux=0.1)
    alert = packet.build_alert(source, None, None, None, None, None)
    assert alert["diaSource"]["psfFlux"] is None
    assert alert["diaSource"]["apFlux"] == pytest.approx(0.1, rel=1e-7)
    assert alert["diaSource"]["apFlux"] != 0.1  # float32, as the wire carries it


def test_cutouts_are_centred_on_each_source(two_visits):
    run = two_visits[0]
    for alert in run.alerts:
        with fits.open(io.BytesIO(alert["cutoutDifference"])) as hdul:
            image = hdul["IMAGE"].data
            peak = np.unravel_index(np.nanargmax(image), image.shape)
            assert abs(peak[0] - 15) <= 1 and abs(peak[1] - 15) <= 1


def test_packets_carry_the_wire_bytes_of_their_alert(two_visits, apdb_template, tmp_path):
    schema = serialize.load_schema()
    path = tmp_path / "apdb.sqlite3"
    shutil.copy(apdb_template, path)
    run = example.run_visit(apdb.open_apdb(path), 1, 60000.1, with_asteroid=False)
    for alert, first in zip(run.alerts, two_visits[0].alerts, strict=True):
        assert serialize.from_wire(serialize.to_wire(alert, schema), schema) == alert
        # Same inputs, same packet (up to the processing time stamp).
        assert alert["diaSourceId"] == first["diaSourceId"]
        assert alert["cutoutDifference"] == first["cutoutDifference"]


def test_retry_after_commit_yields_byte_identical_packets(apdb_template, tmp_path):
    path = tmp_path / "apdb.sqlite3"
    shutil.copy(apdb_template, path)
    handle = apdb.open_apdb(path)
    example.run_visit(handle, 1, 60000.1, with_asteroid=False)
    first = example.run_visit(handle, 2, 60001.1, with_asteroid=True)
    retry = example.run_visit(handle, 2, 60001.1, with_asteroid=True)
    assert retry.result.already_stored
    schema = serialize.load_schema()
    for a, b in zip(first.alerts, retry.alerts, strict=True):
        assert serialize.to_wire(a, schema) == serialize.to_wire(b, schema)
