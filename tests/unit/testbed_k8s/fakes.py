"""Fakes shared by the node-agent tests: a recording API and pod builders."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

__all__ = ["RecordingApi", "make_pod", "sh"]


class RecordingApi:
    """Stands in for `kubeapi.NodeApi`: records status patches and deletions."""

    server = "https://127.0.0.1:6443"

    def __init__(self, objects: dict[tuple[str, str], dict[str, str]] | None = None) -> None:
        self.objects = objects or {}
        self.statuses: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.lock = threading.Lock()

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        return self.objects.get((kind, name))

    def service_account_token(self, pod: dict[str, Any], audience: str | None, exp: int) -> str:
        return "token-for-" + pod["metadata"]["name"]

    def claim_path(self, namespace: str, claim: str) -> Path | None:
        path = self.objects.get(("claim", claim), {}).get("path")
        return Path(path) if path else None

    def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        with self.lock:
            self.statuses.append(status)

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        self.deleted.append(name)

    @property
    def last(self) -> dict[str, Any]:
        return self.statuses[-1]


def make_pod(
    spec: dict[str, Any], name: str = "p", annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "annotations": annotations or {},
        "labels": {"app": "x"},
    }
    return {"metadata": meta, "spec": {"nodeName": "n0", **spec}, "status": {}}


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}
