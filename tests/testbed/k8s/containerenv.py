"""A container's environment and paths on the node agent: env vars, downward API, mounts.

There is no chroot, so a volume mounted at ``mountPath`` is a host directory somewhere under
the agent's state dir. The agent makes the container see it in two ways:

- every occurrence of a ``mountPath`` in ``command``, ``args``, env values and ``workingDir``
  is replaced by the host directory, where it stands as a whole path: preceded by the start
  of the string or a character that cannot be part of a path (``=``, ``:``, space, quote ...)
  and followed by the end, ``/`` or such a character. ``/data`` is rewritten in ``/data``,
  ``/data/x`` and ``--out=/data``, never in ``/data2`` or ``/x/data``. Longer mount paths win;
- each mount is exported as ``TESTBED_MOUNT_<MOUNTPATH>`` (upper case, non-alphanumerics as
  ``_``: ``/var/spool`` gives ``TESTBED_MOUNT_VAR_SPOOL``), and ``TESTBED_MOUNTS`` holds the
  whole map as JSON, for code that builds paths at run time.

The termination-message file (``terminationMessagePath``, default ``/dev/termination-log``)
is rewritten the same way and also exported as ``TESTBED_TERMINATION_MESSAGE_PATH``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "POD_IP",
    "ContainerConfigError",
    "Lookup",
    "Mount",
    "container_env",
    "expand",
    "field_value",
    "mount_env",
    "mount_var_name",
    "mounts_for",
    "rewrite",
]

# The host's address, and a pod's when the agent has not given it one (see `podnet`).
POD_IP = "127.0.0.1"
# (kind: 'configmap' | 'secret', namespace, name) -> decoded data, or None when it is absent.
Lookup = Callable[[str, str, str], "dict[str, str] | None"]
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_META_KEY = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


class ContainerConfigError(ValueError):
    """The pod asks for something the agent cannot provide (the kubelet's
    ``CreateContainerConfigError``); the message says what."""


@dataclass(frozen=True)
class Mount:
    """A path as the container names it and the host path that stands in for it."""

    path: str
    host: Path


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined variables are substituted, ``$$`` is ``$``,
    references to undefined variables stay as written."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _VAR.sub(substitute, text)


def field_value(pod: dict[str, Any], path: str) -> str:
    """The downward-API value of ``fieldRef.fieldPath`` ``path`` for ``pod``."""
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    pod_ip = str(pod.get("status", {}).get("podIP") or POD_IP)
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{key}="{value}"' for key, value in sorted(values.items()))
    match = _META_KEY.fullmatch(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported downward-API fieldPath {path!r}")


def _resource_value(container: dict[str, Any], ref: dict[str, Any]) -> str:
    """``resourceFieldRef``: the container's request or limit, divided and rounded up."""
    from kubernetes.utils import parse_quantity

    kind, _, resource = ref["resource"].partition(".")
    amounts = container.get("resources", {}).get(kind) or {}
    if resource not in amounts:
        raise ContainerConfigError(f"container sets no {ref['resource']} for resourceFieldRef")
    divisor = parse_quantity(ref.get("divisor", "1"))
    return str(math.ceil(parse_quantity(amounts[resource]) / divisor))


def _key_ref(ref: dict[str, Any], kind: str, namespace: str, lookup: Lookup) -> str | None:
    data = lookup(kind, namespace, ref["name"])
    if data is not None and ref["key"] in data:
        return data[ref["key"]]
    if ref.get("optional"):
        return None
    raise ContainerConfigError(f"{kind} {namespace}/{ref['name']} has no key {ref['key']!r}")


def _value_from(
    pod: dict[str, Any], container: dict[str, Any], source: dict[str, Any], lookup: Lookup
) -> str | None:
    namespace = pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        return _resource_value(container, source["resourceFieldRef"])
    if "configMapKeyRef" in source:
        return _key_ref(source["configMapKeyRef"], "configmap", namespace, lookup)
    if "secretKeyRef" in source:
        return _key_ref(source["secretKeyRef"], "secret", namespace, lookup)
    raise ContainerConfigError(f"unsupported env valueFrom {sorted(source)}")


def _env_from(pod: dict[str, Any], source: dict[str, Any], lookup: Lookup) -> dict[str, str]:
    namespace, prefix = pod["metadata"]["namespace"], source.get("prefix", "")
    for field, kind in (("configMapRef", "configmap"), ("secretRef", "secret")):
        if field in source:
            ref = source[field]
            data = lookup(kind, namespace, ref["name"])
            if data is None and not ref.get("optional"):
                raise ContainerConfigError(f"{kind} {namespace}/{ref['name']} not found")
            return {prefix + key: value for key, value in (data or {}).items()}
    raise ContainerConfigError(f"unsupported envFrom {sorted(source)}")


def container_env(
    pod: dict[str, Any], container: dict[str, Any], lookup: Lookup, base: Mapping[str, str]
) -> dict[str, str]:
    """``base`` plus the container's ``envFrom`` and ``env``, in the kubelet's order.

    Values may refer to variables defined before them with ``$(VAR)``.
    """
    env = dict(base)
    for source in container.get("envFrom") or []:
        env.update(_env_from(pod, source, lookup))
    for var in container.get("env") or []:
        if "valueFrom" in var:
            value = _value_from(pod, container, var["valueFrom"], lookup)
            if value is not None:
                env[var["name"]] = value
        else:
            env[var["name"]] = expand(var.get("value", ""), env)
    return env


def mounts_for(container: dict[str, Any], volume_dirs: Mapping[str, Path]) -> list[Mount]:
    """The container's ``volumeMounts`` as host paths (``subPath`` inside the volume)."""
    mounts = []
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volume_dirs:
            raise ContainerConfigError(f"volumeMount {mount['name']!r} names no usable volume")
        host = volume_dirs[mount["name"]]
        if mount.get("subPath"):
            host = host / mount["subPath"]
            host.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(mount["mountPath"].rstrip("/") or "/", host))
    return mounts


def rewrite(text: str, mounts: list[Mount]) -> str:
    """Replace each whole-path occurrence of a mount path in ``text`` by its host path.

    One pass over ``text`` with the longest paths first, so a host path put in is never
    rewritten again and ``/data/sub`` wins over ``/data``.
    """
    if not mounts:
        return text
    hosts = {mount.path: str(mount.host) for mount in mounts}
    alternatives = "|".join(re.escape(path) for path in sorted(hosts, key=len, reverse=True))
    pattern = rf"(?<![\w.\-/])(?:{alternatives})(?![\w.\-])"
    return re.sub(pattern, lambda match: hosts[match.group(0)], text)


def mount_var_name(path: str) -> str:
    """``TESTBED_MOUNT_<PATH>`` for mount path ``path``."""
    return "TESTBED_MOUNT_" + re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_").upper()


def mount_env(mounts: list[Mount]) -> dict[str, str]:
    """The per-mount variables and the ``TESTBED_MOUNTS`` JSON map."""
    env = {mount_var_name(mount.path): str(mount.host) for mount in mounts}
    env["TESTBED_MOUNTS"] = json.dumps({mount.path: str(mount.host) for mount in mounts})
    return env
