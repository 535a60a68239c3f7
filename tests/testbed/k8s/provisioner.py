"""A local-path provisioner for the test bed: PersistentVolumes that are host directories.

Run as ``python -m tests.testbed.k8s.provisioner --kubeconfig ADMIN --root DIR``. It makes the
StorageClass ``testbed-local-path`` (the default class; ``WaitForFirstConsumer``, reclaim
``Delete``) and then, every half second, does what an external provisioner does:

- a claim of one of its classes that is not bound (and, with ``WaitForFirstConsumer``, has the
  scheduler's ``volume.kubernetes.io/selected-node``) gets a PersistentVolume ``pvc-<uid>``
  with a ``claimRef`` to it, a ``local`` source at ``DIR/<node>/pvc-<uid>`` and node affinity
  to that node; the PersistentVolume controller then binds the two and the scheduler binds
  the pod, as with rancher's local-path provisioner;
- a volume it made that is ``Released`` (its claim was deleted) under reclaim ``Delete`` is
  deleted together with its directory.

The node agent mounts a pod's ``persistentVolumeClaim`` as the bound volume's directory
(`volumes`). Polling rather than watching keeps it small; half a second is within what a
scheduler waits for a binding.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import client

from tests.testbed.k8s import kubeapi

__all__ = ["PROVISIONER", "STORAGE_CLASS", "Provisioner", "main", "storage_class", "volume_for"]

log = logging.getLogger("testbed.provisioner")
PROVISIONER = "testbed.shutterline.io/local-path"
STORAGE_CLASS = "testbed-local-path"
_SELECTED_NODE = "volume.kubernetes.io/selected-node"
_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
_INTERVAL = 0.5


def storage_class() -> dict[str, Any]:
    """The test bed's default StorageClass."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def volume_for(claim: dict[str, Any], sc: dict[str, Any], node: str, root: Path) -> dict[str, Any]:
    """The PersistentVolume that satisfies ``claim`` with a directory on ``node``."""
    meta, spec = claim["metadata"], claim["spec"]
    name = f"pvc-{meta['uid']}"
    hostname = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {_PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
            "storageClassName": sc["metadata"]["name"],
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "local": {"path": str(root / node / name)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [hostname]}]}},
        },
    }


class Provisioner:
    """Provisions and reclaims the volumes of the test bed's storage classes."""

    def __init__(self, api: kubeapi.NodeApi, root: Path) -> None:
        self.api, self.root = api, root

    def ensure_class(self) -> None:
        """Create the StorageClass unless it exists."""
        try:
            self.api.request("POST", "/apis/storage.k8s.io/v1/storageclasses", storage_class())
        except client.ApiException as error:
            if error.status != 409:
                raise

    def _classes(self) -> dict[str, dict[str, Any]]:
        items = self.api.request("GET", "/apis/storage.k8s.io/v1/storageclasses")["items"]
        return {sc["metadata"]["name"]: sc for sc in items if sc.get("provisioner") == PROVISIONER}

    def step(self) -> None:
        """One pass: provision pending claims, reclaim released volumes."""
        classes = self._classes()
        claims = self.api.request("GET", "/api/v1/persistentvolumeclaims")["items"]
        for claim in claims:
            sc = classes.get(claim["spec"].get("storageClassName") or "")
            if sc is not None and not claim["spec"].get("volumeName"):
                self._provision(claim, sc)
        for volume in self.api.request("GET", "/api/v1/persistentvolumes")["items"]:
            self._reclaim(volume)

    def _provision(self, claim: dict[str, Any], sc: dict[str, Any]) -> None:
        meta = claim["metadata"]
        node = (meta.get("annotations") or {}).get(_SELECTED_NODE)
        if node is None:
            if sc.get("volumeBindingMode") == "WaitForFirstConsumer":
                return
            node = "any"
        volume = volume_for(claim, sc, node, self.root)
        Path(volume["spec"]["local"]["path"]).mkdir(parents=True, exist_ok=True)
        try:
            self.api.request("POST", "/api/v1/persistentvolumes", volume)
        except client.ApiException as error:
            if error.status != 409:
                raise
            return
        log.info(
            "claim %s/%s: volume %s on %s",
            meta["namespace"],
            meta["name"],
            volume["metadata"]["name"],
            node,
        )

    def _reclaim(self, volume: dict[str, Any]) -> None:
        meta, spec = volume["metadata"], volume["spec"]
        ours = (meta.get("annotations") or {}).get(_PROVISIONED_BY) == PROVISIONER
        released = (volume.get("status") or {}).get("phase") == "Released"
        if not (ours and released and spec.get("persistentVolumeReclaimPolicy") == "Delete"):
            return
        path = Path(spec["local"]["path"])
        if path.is_relative_to(self.root):
            shutil.rmtree(path, ignore_errors=True)
        try:
            self.api.request("DELETE", f"/api/v1/persistentvolumes/{meta['name']}")
        except client.ApiException as error:
            if error.status != 404:
                raise
        log.info("volume %s released: deleted with %s", meta["name"], path)

    def run(self, stopping: threading.Event) -> None:
        """Step until ``stopping`` is set; errors are logged and the next pass retries."""
        while not stopping.is_set():
            try:
                self.step()
            except Exception as error:
                log.warning("provisioner pass failed: %s", error)
            stopping.wait(_INTERVAL)


def main(argv: list[str] | None = None) -> int:
    """Run the provisioner until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="where volumes are made")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    provisioner = Provisioner(kubeapi.NodeApi(args.kubeconfig), args.root.resolve())
    provisioner.ensure_class()
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("provisioner %s ready, volumes under %s", PROVISIONER, args.root)
    provisioner.run(stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
