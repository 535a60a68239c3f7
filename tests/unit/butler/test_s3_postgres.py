"""The central repository on the real S3 server with a PostgreSQL registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lsst.daf.butler import ButlerConfig

from shutterline import exceptions
from shutterline.butler import inputs, names, planfile, precache, repo, selection

from . import sameinputs
from .conftest import Central, populate

pytestmark = [pytest.mark.s3, pytest.mark.postgres]


@pytest.fixture(scope="module")
def s3_env(s3_server: Any) -> Iterator[None]:
    """Point lsst-resources and boto3 at the test S3 server for this module."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in s3_server.env().items():
            patch.setenv(key, value)
        yield


def _central(s3_server: Any, postgres_server: Any, workdir: Path) -> tuple[Central, str]:
    bucket = s3_server.make_bucket("central")
    root = f"s3://{bucket}/repo"
    butler = repo.create_repo(root, registry_url=postgres_server.create_database("central"))
    return populate(butler, workdir), bucket


@pytest.fixture(scope="module")
def s3_central(
    s3_env: None, s3_server: Any, postgres_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Central, str]:
    return _central(s3_server, postgres_server, tmp_path_factory.mktemp("s3central"))


def test_repository_lives_in_s3_with_checksums(s3_central: tuple[Central, str]) -> None:
    central, _ = s3_central
    ref = selection.plan_detector(central.butler, 1000, 1).flat.ref
    uri = central.butler.getURI(ref)
    assert uri.scheme == "s3"
    root = str(uri.root_uri().join("repo/", forceDirectory=True))
    assert ButlerConfig(root)["registry", "db"].startswith("postgresql")
    flat = repo.open_repo(root).get(ref)
    np.testing.assert_array_equal(flat.image, central.flat[1].image)


def test_precache_from_s3_and_postgres(s3_central: tuple[Central, str], tmp_path: Path) -> None:
    central, _ = s3_central
    report = precache.precache_detector(central.butler, str(tmp_path / "local"), 1001, 1)
    assert report.n_unverified == 0 and report.bytes > 0
    local_butler = repo.open_repo(str(tmp_path / "local"))
    local = inputs.load_detector_inputs(local_butler, 1001, 1)
    # The plan the pre-cache recorded is the PostgreSQL registry's, ref for ref, in order.
    recorded = planfile.read_plan(tmp_path / "local", local_butler.dimensions, 1001, 1)
    sameinputs.assert_same_plan(recorded, selection.plan_detector(central.butler, 1001, 1))
    # Datastore records of S3 files from PostgreSQL, in one query, then four threads' gets.
    direct = inputs.load_detector_inputs(central.butler, 1001, 1, threads=4)
    np.testing.assert_array_equal(local.raw[1].data, direct.raw[1].data)
    np.testing.assert_array_equal(local.bias.image, central.bias[1].image)
    np.testing.assert_array_equal(local.flat.image, direct.flat.image)
    assert [(p.tract, p.patch) for p, _ in local.templates] == [
        (p.tract, p.patch) for p, _ in direct.templates
    ]
    assert sorted(local.refcat["id"]) == sorted(direct.refcat["id"])


def test_corrupted_s3_object_is_reported(
    s3_env: None, s3_server: Any, postgres_server: Any, tmp_path: Path
) -> None:
    central, bucket = _central(s3_server, postgres_server, tmp_path)
    plan = selection.plan_detector(central.butler, 1000, 2)
    uri = central.butler.getURI(plan.bias.ref)
    client = s3_server.client()
    key = uri.relativeToPathRoot
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    with pytest.raises(exceptions.CorruptInputError) as info:
        precache.precache_detector(central.butler, str(tmp_path / "local"), 1000, 2)
    message = str(info.value)
    assert names.BIAS in message and "detector=2" in message and str(plan.bias.ref.id) in message
    assert not (tmp_path / "local").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("local")]
