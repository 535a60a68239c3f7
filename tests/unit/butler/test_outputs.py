"""Outputs of a detector: put into the local repository, exported to the central one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from shutterline.butler import names, outputs, precache, repo

from .conftest import Central, make_exposure


def test_outputs_round_trip_and_export(shared_central: Central, tmp_path: Path) -> None:
    precache.precache_detector(shared_central.butler, str(tmp_path / "local"), 1001, 2)
    local = repo.open_repo(str(tmp_path / "local"), writeable=True)
    calexp = make_exposure(3.0, seed=9)
    src = Table({"x": [1.0, 2.0], "y": [3.0, 4.0], "flux": [10.0, 20.0]})
    outputs.put_outputs(local, 1001, 2, {names.CALEXP: calexp, names.SRC: src})
    data_id = {"instrument": names.INSTRUMENT, "visit": 1001, "detector": 2}
    back = local.get(names.CALEXP, data_id, collections=names.visit_run(1001))
    np.testing.assert_array_equal(back.image, calexp.image)
    table = local.get(names.SRC, data_id, collections=names.visit_run(1001))
    assert list(table["flux"]) == [10.0, 20.0]

    central = repo.open_repo(str(shared_central.root / "central"), writeable=True)
    exported = outputs.export_outputs(local, central, 1001, 2, [names.SRC])
    assert [ref.datasetType.name for ref in exported] == [names.SRC]
    again = central.get(names.SRC, data_id, collections=names.visit_run(1001))
    assert list(again["x"]) == [1.0, 2.0]
    with pytest.raises(LookupError):
        central.get(names.CALEXP, data_id, collections=names.visit_run(1001))


def test_unknown_output_type_is_refused(tmp_path: Path) -> None:
    butler = repo.create_repo(str(tmp_path / "r"))
    with pytest.raises(ValueError, match="not output dataset types"):
        outputs.put_outputs(butler, 1, 1, {"raw": None})
