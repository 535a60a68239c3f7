"""Pod addresses on the node agent: a loopback IP per pod and host names for headless Services.

Linux routes all of 127.0.0.0/8 to the loopback interface, so every pod gets its own
``127.x.y.z`` as ``status.podIP`` (what ``fieldRef: status.podIP`` gives its containers) and
servers that bind their pod IP can all use the same port, as on a real cluster. A pod keeps
its address when it is deleted and created again under the same name (a StatefulSet's
``kafka-1``), so clients that cached the address are not misled for long.

DNS is the host's ``/etc/hosts``: a pod with ``spec.subdomain`` (a StatefulSet pod of a
headless Service) is published as ``<hostname>.<subdomain>.<namespace>.svc.cluster.local`` and
the Service name ``<subdomain>.<namespace>.svc.cluster.local`` resolves to every such pod, as
a headless Service with ``publishNotReadyAddresses`` does. Every line the agent writes ends
in a tag naming the agent (``# shutterline-testbed <node>@<pid>``); the agent removes its lines
when the pod goes and when it stops, and lines of agents that no longer run are dropped by the
next agent that writes. Only loopback addresses are ever written. Edits are made in place
under an exclusive ``flock`` of the file, so several agents on one host do not race.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["CLUSTER_DOMAIN", "HOSTS_FILE", "TAG", "PodNetwork", "pod_names"]

CLUSTER_DOMAIN = "cluster.local"
HOSTS_FILE = Path(os.environ.get("TESTBED_HOSTS_FILE", "/etc/hosts"))
TAG = "# shutterline-testbed"
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_TAGGED = re.compile(rf"{re.escape(TAG)} (\S+)@(\d+)\s*$")


def pod_names(pod: dict[str, Any], domain: str = CLUSTER_DOMAIN) -> list[str]:
    """The DNS names a cluster's DNS would give ``pod`` (empty without ``spec.subdomain``)."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    subdomain = spec.get("subdomain")
    if not subdomain:
        return []
    host = spec.get("hostname") or meta["name"]
    service = f"{subdomain}.{meta['namespace']}.svc"
    return [f"{host}.{service}.{domain}", f"{host}.{service}", f"{service}.{domain}"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked_lines(path: Path) -> Iterator[list[str]]:
    """The lines of ``path`` under an exclusive lock; the list as left is written back."""
    with open(path, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            lines = handle.read().splitlines()
            before = list(lines)
            yield lines
            if lines != before:
                handle.seek(0)
                handle.truncate()
                handle.write("".join(f"{line}\n" for line in lines))
                handle.flush()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class PodNetwork:
    """One agent's pod addresses and its host-name entries."""

    def __init__(self, node_name: str, hosts_file: Path = HOSTS_FILE, seed: int | None = None):
        self.owner = f"{node_name}@{os.getpid()}"
        self.hosts_file = hosts_file
        self._random = random.Random(seed)
        self._by_pod: dict[tuple[str, str], str] = {}
        self._published: dict[str, list[str]] = {}  # pod uid -> lines
        self._lock = threading.Lock()

    def address(self, pod: dict[str, Any]) -> str:
        """The pod's IP: the one its name had before, else a fresh loopback address."""
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self._lock:
            if key not in self._by_pod:
                taken = set(self._by_pod.values())
                while True:
                    # 127.16.0.0 - 127.254.255.254: clear of 127.0.0.1 and of each other.
                    value = self._random.randrange(16 << 16, 255 << 16) | 1
                    ip = str(ipaddress.ip_address((127 << 24) + value))
                    if ip not in taken:
                        break
                self._by_pod[key] = ip
            return self._by_pod[key]

    def publish(self, pod: dict[str, Any], ip: str) -> None:
        """Add the pod's host names (if it has any) pointing at ``ip``."""
        names = pod_names(pod)
        if not names:
            return
        if ipaddress.ip_address(ip) not in _LOOPBACK:
            raise ValueError(f"refusing to publish non-loopback address {ip} in {self.hosts_file}")
        line = f"{ip} {' '.join(names)} {TAG} {self.owner}"
        with self._lock:
            self._published[str(pod["metadata"]["uid"])] = [line]
            self._rewrite()

    def withdraw(self, pod: dict[str, Any]) -> None:
        """Remove the pod's host names."""
        with self._lock:
            if self._published.pop(str(pod["metadata"]["uid"]), None) is not None:
                self._rewrite()

    def close(self) -> None:
        """Remove every line this agent wrote."""
        with self._lock:
            self._published.clear()
            self._rewrite()

    def _rewrite(self) -> None:
        """Replace this agent's lines (and those of agents that died) by the current ones."""
        if not self.hosts_file.exists():
            return
        with _locked_lines(self.hosts_file) as lines:
            lines[:] = [line for line in lines if self._keep(line)]
            lines += [line for group in self._published.values() for line in group]

    def _keep(self, line: str) -> bool:
        """Whether a line is someone else's: untagged, or of another agent that still runs."""
        match = _TAGGED.search(line)
        if match is None:
            return True
        return f"{match[1]}@{match[2]}" != self.owner and _pid_alive(int(match[2]))
