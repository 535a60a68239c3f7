"""A pod's volumes as host directories under the agent's state dir.

``emptyDir`` is an empty directory; ``configMap``, ``secret``, ``downwardAPI`` and
``projected`` (including the service-account token that every pod gets) are directories of
files written once when the pod starts; ``hostPath`` is the host path itself; a
``persistentVolumeClaim`` is the directory of the PersistentVolume bound to the claim (``local``
or ``hostPath``, as the test bed's provisioner makes them, see `provisioner`). Other volume
types make the pod's containers wait with ``CreateContainerConfigError``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.testbed.k8s import containerenv

__all__ = ["Sources", "prepare_volumes"]

# The service-account token request of the kube-api-access volume asks for this by default.
_DEFAULT_TOKEN_SECONDS = 3607


@dataclass(frozen=True)
class Sources:
    """Where volume contents come from: ConfigMaps/Secrets, and service-account tokens."""

    lookup: containerenv.Lookup
    # (pod, audience or None, expirationSeconds) -> token
    token: Callable[[dict[str, Any], str | None, int], str]
    # (namespace, claim name) -> host directory of its bound volume, or None if unbound
    claim: Callable[[str, str], Path | None] | None = None


def _write_items(directory: Path, data: dict[str, str], items: list[dict[str, Any]] | None) -> None:
    """Write ``data`` as files: every key, or only ``items`` (key -> relative path)."""
    pairs = (
        [(item["key"], item["path"]) for item in items] if items else [(key, key) for key in data]
    )
    for key, relative in pairs:
        if key not in data:
            raise containerenv.ContainerConfigError(f"volume item key {key!r} not found")
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[key])


def _object_files(
    pod: dict[str, Any], kind: str, source: dict[str, Any], directory: Path, sources: Sources
) -> None:
    name = source.get("name") or source.get("secretName")
    namespace = pod["metadata"]["namespace"]
    data = sources.lookup(kind, namespace, str(name))
    if data is None:
        if source.get("optional"):
            return
        raise containerenv.ContainerConfigError(f"{kind} {namespace}/{name} not found")
    _write_items(directory, data, source.get("items"))


def _downward_files(pod: dict[str, Any], source: dict[str, Any], directory: Path) -> None:
    for item in source.get("items") or []:
        if "fieldRef" not in item:
            raise containerenv.ContainerConfigError("downwardAPI volume supports fieldRef only")
        target = directory / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(containerenv.field_value(pod, item["fieldRef"]["fieldPath"]))


def _projected(
    pod: dict[str, Any], spec: dict[str, Any], directory: Path, sources: Sources
) -> None:
    for source in spec.get("sources") or []:
        if "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            expiration = int(token.get("expirationSeconds", _DEFAULT_TOKEN_SECONDS))
            value = sources.token(pod, token.get("audience"), expiration)
            (directory / token["path"]).write_text(value)
        elif "configMap" in source:
            _object_files(pod, "configmap", source["configMap"], directory, sources)
        elif "secret" in source:
            _object_files(pod, "secret", source["secret"], directory, sources)
        elif "downwardAPI" in source:
            _downward_files(pod, source["downwardAPI"], directory)
        else:
            raise containerenv.ContainerConfigError(f"unsupported projection {sorted(source)}")


def _claimed(pod: dict[str, Any], source: dict[str, Any], sources: Sources) -> Path:
    namespace, claim = pod["metadata"]["namespace"], str(source["claimName"])
    host = sources.claim(namespace, claim) if sources.claim is not None else None
    if host is None:
        raise containerenv.ContainerConfigError(
            f"persistentVolumeClaim {namespace}/{claim} is not bound to a local volume"
        )
    host.mkdir(parents=True, exist_ok=True)
    return host


def _prepare_one(
    pod: dict[str, Any], volume: dict[str, Any], directory: Path, sources: Sources
) -> Path:
    if "persistentVolumeClaim" in volume:
        return _claimed(pod, volume["persistentVolumeClaim"], sources)
    if "hostPath" in volume:
        host = Path(volume["hostPath"]["path"])
        if volume["hostPath"].get("type") == "DirectoryOrCreate":
            host.mkdir(parents=True, exist_ok=True)
        return host
    directory.mkdir(parents=True, exist_ok=True)
    if "emptyDir" in volume:
        pass
    elif "configMap" in volume:
        _object_files(pod, "configmap", volume["configMap"], directory, sources)
    elif "secret" in volume:
        _object_files(pod, "secret", volume["secret"], directory, sources)
    elif "downwardAPI" in volume:
        _downward_files(pod, volume["downwardAPI"], directory)
    elif "projected" in volume:
        _projected(pod, volume["projected"], directory, sources)
    else:
        kinds = sorted(set(volume) - {"name"})
        raise containerenv.ContainerConfigError(
            f"volume {volume['name']!r}: type {kinds} is not supported by the test-bed agent"
        )
    return directory


def prepare_volumes(pod: dict[str, Any], pod_dir: Path, sources: Sources) -> dict[str, Path]:
    """Create every volume of ``pod`` under ``pod_dir/volumes``; map volume name -> path."""
    volumes = pod["spec"].get("volumes") or []
    return {
        volume["name"]: _prepare_one(pod, volume, pod_dir / "volumes" / volume["name"], sources)
        for volume in volumes
    }
