"""``shutterline schedule feed`` against the real API server: Visits appear ahead of time."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import operatorbed
from tests.e2e.test_testbed_k8s import wait_for
from tests.testbed.k8s import cluster

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


def _schedule(path: Path, n: int) -> Path:
    visits = [
        {
            "visit": 200100 + i,
            "exposure": 200100 + i,
            "mjd": 61280.2 + i / 1440.0,
            "ra": 150.0,
            "dec": -2.0,
            "band": "r",
            "physical_filter": "r DECam SDSS c0002 6415.0 1480.0",
            "rotation": 0.0,
            "exptime": 30.0,
            "detectors": [28, 35],
        }
        for i in range(n)
    ]
    path.write_text(yaml.safe_dump({"instrument": "SimDECam", "visits": visits}))
    return path


@pytest.fixture(scope="module")
def crds(k8s_cluster: cluster.Cluster) -> cluster.Cluster:
    k8s_cluster.kubectl("apply", "-f", str(operatorbed.ROOT / "crds"))
    established = functools.partial(operatorbed._established, k8s_cluster, "visits.shutterline.io")
    wait_for(established, 60, "the Visit CRD established")
    return k8s_cluster


def _visits(bed: cluster.Cluster, namespace: str) -> list[dict[str, Any]]:
    out = bed.kubectl("get", "visits", "-n", namespace, "-o", "json").stdout
    return list(json.loads(out)["items"])


def test_feed_creates_each_visit_lead_time_ahead(crds: cluster.Cluster, tmp_path: Path) -> None:
    from kubernetes import client, config

    from shutterline.simulate import play
    from shutterline_operator import feed

    namespace = f"feed-{uuid.uuid4().hex[:6]}"
    crds.kubectl("create", "namespace", namespace)
    schedule = _schedule(tmp_path / "schedule.yaml", 2)
    instrument, entries = play.load_schedule(schedule)
    raw_uri = "s3://b/incoming/{visit}/raw_{visit}_{detector:02d}.fits"
    created: dict[str, float] = {}
    with config.new_client_from_config(str(crds.kubeconfig)) as api_client:
        api = client.CustomObjectsApi(api_client)
        # Visits one night-minute apart at 30x: two seconds apart; the first opens in 5 s.
        clock = play.ReplayClock(entries[0]["mjd"], time.time() + 5.0, speed=30.0)
        feed.feed(
            api, entries, instrument, raw_uri, clock, 3.0, namespace,
            on_created=lambda manifest, at: created.setdefault(manifest["metadata"]["name"], at),
        )  # fmt: skip
    visits = sorted(_visits(crds, namespace), key=lambda v: v["spec"]["visitId"])
    assert [v["metadata"]["name"] for v in visits] == ["visit-200100", "visit-200101"]
    for visit in visits:
        spec = visit["spec"]
        opens = _unix(spec["observationStart"])
        assert opens - 3.0 - 0.05 <= created[visit["metadata"]["name"]] <= opens - 3.0 + 1.0
        assert spec["physicalFilter"] == "r DECam SDSS c0002 6415.0 1480.0"
        assert spec["detectors"] == [28, 35] and spec["boresight"]["dec"] == -2.0
        assert spec["rawUri"] == raw_uri and spec["exposureTime"] == 30.0
    assert _unix(visits[1]["spec"]["observationStart"]) - _unix(
        visits[0]["spec"]["observationStart"]
    ) == pytest.approx(2.0, abs=0.01)
    # The command line, fed again over the same Visits (a restarted feed): no error, none new.
    argv = [
        sys.executable, "-m", "shutterline.cli.main", "schedule", "feed", str(schedule),
        "--lead-time", "3", "--raw-uri", raw_uri, "--start", _rfc3339(clock.start_unix),
        "--speed", "30", "--namespace", namespace, "--kubeconfig", str(crds.kubeconfig),
    ]  # fmt: skip
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "created" not in again.stdout and len(_visits(crds, namespace)) == 2
    crds.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _rfc3339(unix: float) -> str:
    import datetime

    when = datetime.datetime.fromtimestamp(unix, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unix(text: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
