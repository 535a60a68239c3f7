"""The local-path provisioner's volumes, and a claim mounted as the bound volume's directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testbed.k8s import containerenv, provisioner, volumes
from tests.unit.testbed_k8s.fakes import RecordingApi, make_pod


def claim() -> dict:
    return {
        "metadata": {
            "name": "data-kafka-0",
            "namespace": "ns",
            "uid": "1234",
            "annotations": {"volume.kubernetes.io/selected-node": "n0"},
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Ti"}}},
    }


def test_volume_is_a_directory_on_the_selected_node_bound_to_the_claim(tmp_path: Path) -> None:
    sc = provisioner.storage_class()
    volume = provisioner.volume_for(claim(), sc, "n0", tmp_path)
    spec = volume["spec"]
    assert volume["metadata"]["name"] == "pvc-1234"
    assert spec["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "ns",
        "name": "data-kafka-0",
        "uid": "1234",
    }
    assert spec["capacity"] == {"storage": "1Ti"}
    assert spec["storageClassName"] == provisioner.STORAGE_CLASS
    assert spec["local"]["path"] == str(tmp_path / "n0" / "pvc-1234")
    term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n0"]}
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"


def test_claim_volume_is_the_bound_volumes_directory(tmp_path: Path) -> None:
    api = RecordingApi({("claim", "data-kafka-0"): {"path": str(tmp_path / "pv")}})
    pod = make_pod(
        {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-kafka-0"}}]}
    )
    sources = volumes.Sources(api.lookup, api.service_account_token, api.claim_path)
    dirs = volumes.prepare_volumes(pod, tmp_path / "pod", sources)
    assert dirs == {"data": tmp_path / "pv"} and (tmp_path / "pv").is_dir()


def test_unbound_claim_is_a_config_error_naming_it(tmp_path: Path) -> None:
    api = RecordingApi()
    pod = make_pod({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "x"}}]})
    sources = volumes.Sources(api.lookup, api.service_account_token, api.claim_path)
    with pytest.raises(containerenv.ContainerConfigError, match="ns/x is not bound"):
        volumes.prepare_volumes(pod, tmp_path / "pod", sources)
