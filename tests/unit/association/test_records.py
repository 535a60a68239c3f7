"""The DIA source table of stage 5 maps onto the APDB / alert schema fields."""

from __future__ import annotations

import numpy as np
import pandas
import pytest
from astropy.table import Table
from lsst.dax.apdb import ApdbTables

from shutterline.alerts import packet, serialize
from shutterline.association import records
from shutterline.differencing import dia
from tests.unit.association import synthetic

#: Stage-5 columns with no schema field (kept in the internal catalog only).
UNMAPPED = {"peak_snr", "reliability_penalty"}


def _schema_fields() -> frozenset[str]:
    schema = serialize.load_schema()
    return frozenset(f for f, _, _ in packet.record_fields("diaSource", schema.major, schema.minor))


def test_every_stage5_column_has_a_schema_field():
    fields = _schema_fields()
    missing = [
        c for c in dia.COLUMNS if c not in UNMAPPED and records.schema_name(c, fields) is None
    ]
    assert missing == []
    assert records.schema_name("pixel_flags_sat", fields) == "pixelFlags_saturated"
    assert records.schema_name("psf_flux_flag_no_good_pixels", fields) == (
        "psfFlux_flag_noGoodPixels"
    )


def test_frame_takes_visit_fields_from_visit_info(sqlite_apdb):
    table = synthetic.dia_table(np.array([150.0]), np.array([2.0]), visit=4, detector=9)
    info = synthetic.visit_info(4, detector=9, mjd=60010.25, band="i")
    fields = sqlite_apdb.columns(ApdbTables.DiaSource)
    frame = records.dia_source_frame(table, info, fields, processed_mjd=60010.3)
    row = frame.iloc[0]
    assert (row.visit, row.detector, row.band) == (4, 9, "i")
    assert row.midpointMjdTai == 60010.25 and row.timeProcessedMjdTai == 60010.3
    assert row.scienceFlux == table["sci_flux"][0]
    assert bool(row.pixelFlags_saturated) is False


def test_missing_id_or_bbox_is_named():
    with pytest.raises(ValueError, match="bbox_size"):
        records.dia_source_frame(
            Table({"dia_source_id": [1]}), synthetic.visit_info(1), _schema_fields(), 1.0
        )


def test_frame_records_turn_missing_values_into_none():
    frame = pandas.DataFrame(
        {
            "a": [1.5, np.nan],
            "b": pandas.array([1, None], dtype="Int64"),
            "c": pandas.array([True, None], dtype="boolean"),
            "d": ["x", None],
        }
    )
    assert records.frame_records(frame) == [
        {"a": 1.5, "b": 1, "c": True, "d": "x"},
        {"a": None, "b": None, "c": None, "d": None},
    ]
    assert type(records.frame_records(frame)[0]["b"]) is int
