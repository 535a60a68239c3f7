"""The chart's nightly precompute on the test bed: an Indexed Job of real pods fills the backbone.

The CronJob is rendered by helm from the chart and applied. One Job is made from it as an
operator would (``kubectl create job --from=cronjob/...``). The node agent runs its two
indexes as pipeline-image processes, each writing its shard of a 20 000-object catalogue
(read from S3) into an S3 + PostgreSQL repository. The stored pieces must be exactly what
this process computes for the same night and split: every file, and the arrays of a sample.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from lsst.resources import ResourcePath

from shutterline.butler import names, repo, sspieces
from shutterline.simulate import orbitcatalog
from shutterline.solarsystem import mpcorbits, piecefiles, precompute
from tests.e2e import helm_release
from tests.testbed.k8s import cluster
from tests.unit.chart import render

pytestmark = [pytest.mark.testbed, pytest.mark.s3, pytest.mark.postgres, pytest.mark.slow]

N_OBJECTS = 20_000  # two chunks of precompute.run: one per shard
HOURS, PIECE_HOURS = 1.0, 1.0  # one piece: the cost is objects x pieces


def _render_cronjob(namespace: str, repo_uri: str, catalog: str, tmp: Path) -> dict[str, Any]:
    values = {
        "namespaces": {"workers": namespace, "create": False},
        "operator": {"enabled": False},
        "kafka": {"enabled": False, "external": {"bootstrapServers": "127.0.0.1:1"}},
        "schemaRegistry": {"enabled": False, "url": "http://127.0.0.1:1/apis/ccompat/v7"},
        "instruments": {},
        "networkPolicies": {"enabled": False},
        "pipeline": {"image": {"repository": "registry.example/shutterline-pipeline"}},
        "backbone": {"repo": repo_uri, "credentialsSecret": "orbits-s3"},
        "orbits": {
            "precompute": {
                "enabled": True,
                "catalog": catalog,
                "shards": 2,
                "parallelism": 2,
                "hours": HOURS,
                "pieceHours": PIECE_HOURS,
                "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}},
            }
        },
    }
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    text = render.helm("template", "sl", str(render.CHART), "-f", str(path)).stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    return render.one(docs, "CronJob", "orbits-precompute")


def _wait_complete(bed: cluster.Cluster, namespace: str, job: str, timeout: float) -> dict:
    def done() -> dict[str, Any] | None:
        out = bed.kubectl("get", "job", job, "-n", namespace, "-o", "json")
        body: dict[str, Any] = json.loads(out.stdout)
        kinds = {c["type"] for c in body.get("status", {}).get("conditions", [])}
        if "Failed" in kinds:
            raise AssertionError(f"job failed: {body['status']}")
        return body if "Complete" in kinds else None

    result: dict[str, Any] = helm_release.wait_for(done, timeout, f"job {job} complete")
    return result


def _print_pod_logs(bed: cluster.Cluster, namespace: str) -> None:
    """The end of every pod's output, for a failed run's report."""
    pods = json.loads(bed.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)
    for pod in pods["items"]:
        print(pod["metadata"]["name"], pod.get("status", {}).get("containerStatuses"))
        print(bed.container_log(pod, "precompute")[-3000:])


def test_indexed_job_pods_store_the_single_process_pieces(
    k8s_cluster: cluster.Cluster,
    s3_server: Any,
    postgres_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    repo_uri, catalog, local_catalog = _stage_backbone(s3_server, postgres_server, tmp_path)
    job = _run_tonight(k8s_cluster, s3_server, repo_uri, catalog, tmp_path)
    assert job["status"]["succeeded"] == 2
    assert job["status"]["completedIndexes"] == "0,1"

    butler = repo.open_repo(repo_uri)
    runs = sorted(butler.registry.queryCollections(f"{names.SS_PIECES_COLLECTION}/*"))
    assert len(runs) == 2 * int(HOURS / PIECE_HOURS)  # a RUN per piece and shard
    refs = _refs(butler, (names.SS_PIECES, names.SS_FAST_PIECES), runs)
    starts = sorted({float(r.run.split("/")[2].split("+")[0]) for r in refs})
    assert len(starts) == int(HOURS / PIECE_HOURS)
    first = butler.get(next(r for r in refs if r.run.split("/")[2].startswith(f"{starts[0]:.6f}")))
    night = precompute.Night(
        float(first["piece_start_mjd"]), int(HOURS / PIECE_HOURS), PIECE_HOURS / 24.0
    )
    assert runs == sorted(
        sspieces.run_name(t, night.span_days, s, 2) for t in starts for s in range(2)
    )
    orbit_runs = sorted(butler.registry.queryCollections(f"{names.SS_PIECE_ORBITS_COLLECTION}/*"))
    span = night.n_pieces * night.span_days  # the orbit records: a RUN per night and shard
    assert orbit_runs == sorted(sspieces.orbits_run_name(starts[0], span, s, 2) for s in range(2))
    refs += _refs(butler, (names.SS_PIECE_ORBITS, names.SS_FAST_PIECE_ORBITS), orbit_runs)

    local = _split_here(local_catalog, tmp_path / "local", night)
    by_name = {_file_name(r, starts): r for r in refs}
    assert sorted(by_name) == sorted(local)  # every region, piece and shard, nothing else
    rng = np.random.default_rng(0)
    for name in rng.choice(sorted(local), size=min(24, len(local)), replace=False):
        got, want = butler.get(by_name[name]), local[name]
        assert sorted(got) == sorted(want), name
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name}: {key}")


def _stage_backbone(s3_server: Any, postgres_server: Any, tmp: Path) -> tuple[str, str, Path]:
    """An S3 + PostgreSQL repository and the catalogue in the backbone (and a local copy)."""
    bucket = s3_server.make_bucket("orbits")
    repo_uri = f"s3://{bucket}/repo"
    repo.create_repo(repo_uri, registry_url=postgres_server.create_database("orbits"))
    local_catalog = tmp / "catalog.npz"
    mpcorbits.write_catalog(local_catalog, orbitcatalog.synthesize(N_OBJECTS, 9, 61200.0))
    catalog = f"s3://{bucket}/orbits/catalog.npz"
    ResourcePath(catalog).transfer_from(ResourcePath(str(local_catalog)), transfer="copy")
    return repo_uri, catalog, local_catalog


def _run_tonight(
    bed: cluster.Cluster, s3_server: Any, repo_uri: str, catalog: str, tmp: Path
) -> dict[str, Any]:
    """Apply the chart's CronJob and its credentials, make one Job from it, wait for it."""
    namespace = helm_release.create_namespace(bed, "orbits")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "orbits-s3"},
        "stringData": s3_server.env(),
    }
    bed.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(secret))
    cron = _render_cronjob(namespace, repo_uri, catalog, tmp)
    bed.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(cron))
    bed.kubectl(
        "create", "job", "tonight", f"--from=cronjob/{cron['metadata']['name']}", "-n", namespace
    )
    try:
        return _wait_complete(bed, namespace, "tonight", timeout=300)
    except BaseException:  # a failed Job or pytest.fail's timeout
        _print_pod_logs(bed, namespace)
        raise


def _refs(butler: Any, dataset_types: tuple[str, ...], runs: list[str]) -> list[Any]:
    return [
        ref
        for dataset in dataset_types
        for ref in butler.query_datasets(
            dataset, collections=runs, find_first=False, explain=False, limit=None
        )
    ]


def _split_here(catalog: Path, out: Path, night: precompute.Night) -> dict[str, Any]:
    """The same night and split computed in this process, as the per-region datasets."""
    for shard in range(2):
        precompute.run(catalog, out, night, shard=shard, shards=2)
    return {
        name: arrays
        for tag in piecefiles.shard_tags(2)
        for name, arrays in piecefiles.split(out, tag)
    }


def _file_name(ref: Any, starts: list[float]) -> str:
    """The precompute file name a stored dataset came from."""
    piece_run, shard = ref.run.split("/")[2:4]
    if ref.datasetType.name == names.SS_FAST_PIECE_ORBITS:
        return f"ofast.{shard}.npz"
    if ref.datasetType.name == names.SS_PIECE_ORBITS:
        return f"o{int(ref.dataId[names.SS_PIECE_ORBITS_PIXELIZATION]):05d}.{shard}.npz"
    piece = [f"{t:.6f}" for t in starts].index(piece_run.split("+")[0])
    if ref.datasetType.name == names.SS_FAST_PIECES:
        return f"fast.p{piece:03d}.{shard}.npz"
    return f"r{int(ref.dataId[names.SS_PIECES_PIXELIZATION]):04d}.p{piece:03d}.{shard}.npz"
