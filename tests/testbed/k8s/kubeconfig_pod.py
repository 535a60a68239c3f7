"""The kubeconfig a pod's containers use to reach the API server with their own token.

Client libraries look for the in-cluster token at a fixed path the agent cannot provide (no
chroot), so containers that mount the service-account directory get ``KUBECONFIG`` pointing
at this file instead: the API server's address, its CA and the pod's token file.
"""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["write"]


def write(pod_dir: Path, server: str, account_dir: Path) -> Path:
    """Write ``<pod_dir>/kubeconfig`` for the token in ``account_dir``; return its path."""
    path = pod_dir / "kubeconfig"
    namespace = (
        (account_dir / "namespace").read_text().strip()
        if (account_dir / "namespace").exists()
        else "default"
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "testbed",
                "cluster": {"server": server, "certificate-authority": str(account_dir / "ca.crt")},
            }
        ],
        "users": [{"name": "pod", "user": {"tokenFile": str(account_dir / "token")}}],
        "contexts": [
            {
                "name": "pod",
                "context": {"cluster": "testbed", "user": "pod", "namespace": namespace},
            }
        ],
        "current-context": "pod",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
