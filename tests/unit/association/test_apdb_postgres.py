"""The same association on a real PostgreSQL server (the cluster configuration)."""

from __future__ import annotations

import numpy as np
import pytest

from shutterline.association import apdb, associate
from tests.unit.association import synthetic

pytestmark = pytest.mark.postgres

ARCSEC = 1.0 / 3600.0


def test_two_visits_and_a_retry_on_postgres(postgres_server):
    url = postgres_server.create_database("apdb")
    handle = apdb.open_apdb(url, create=True)
    assert handle.row_counts()["DiaSource"] == 0
    rng = np.random.default_rng(5)
    ra = 150.0 + rng.uniform(-0.05, 0.05, 40)
    dec = 2.0 + rng.uniform(-0.1, 0.1, 40)
    for visit, mjd in ((1, 60000.1), (2, 60001.1)):
        table = synthetic.dia_table(ra + 0.2 * ARCSEC * (visit - 1), dec, visit=visit, seed=visit)
        res = associate.associate(table, handle, synthetic.visit_info(visit, mjd=mjd))
        assert associate.commit(res, handle)
    assert res.n_matched == 40
    inputs = list(res.alert_inputs())
    assert all(len(i.prv_dia_sources) == 1 and i.dia_object["nDiaSources"] == 2 for i in inputs)
    # A retry of visit 2 writes nothing and reads the same associations back.
    reopened = apdb.open_apdb(url, create=True)
    retry = associate.associate(table, reopened, synthetic.visit_info(2, mjd=60001.1))
    assert retry.already_stored and not associate.commit(retry, reopened)
    np.testing.assert_array_equal(
        retry.dia_sources["dia_object_id"], res.dia_sources["dia_object_id"]
    )
    assert reopened.row_counts() == {**handle.row_counts()}
    assert reopened.row_counts()["DiaSource"] == 80 and reopened.row_counts()["DiaObject"] == 80


def _open_and_count(url: str) -> int:
    return apdb.open_apdb(url, create=True).row_counts()["DiaSource"]


@pytest.mark.slow
def test_detectors_creating_the_schema_at_once_all_get_it(postgres_server):
    # Pods of one visit start together and may all find the database empty: every one of
    # them must open the APDB, not fail the losers of the race with a permanent error.
    import concurrent.futures
    import multiprocessing

    url = postgres_server.create_database("apdb")
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(4, mp_context=ctx) as pool:
        counts = list(pool.map(_open_and_count, [url] * 4))
    assert counts == [0, 0, 0, 0]
