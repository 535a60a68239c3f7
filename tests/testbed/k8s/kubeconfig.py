"""Kubeconfig files with the CA and the client pair embedded, so they can be copied around."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from tests.testbed.k8s import certs

__all__ = ["write_kubeconfig"]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(
    path: Path, server: str, ca: Path, client: certs.KeyPair, user: str, context: str = "testbed"
) -> Path:
    """Write a kubeconfig for ``user`` (authenticated by ``client``) at ``server``; return it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
