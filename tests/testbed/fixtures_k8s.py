"""Session-scoped pytest fixtures for the Kubernetes control plane and node agent.

``k8s_cluster`` builds or fetches the pinned binaries on first use (cached under
``~/.cache/shutterline/testbed/``; progress shows live), starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and one node agent on free loopback ports, and stops
them when the session ends. A start failure raises `tests.testbed.procs.ComponentError`
naming the component with the tail of its log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.testbed.k8s import cluster

__all__ = ["k8s_cluster"]


@pytest.fixture(scope="session")
def k8s_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[cluster.Cluster]:
    """A control plane with one node agent (see `tests.testbed.k8s.cluster.Cluster`).

    The object has ``.kubeconfig`` (admin), ``.api_client()`` (a ``kubernetes`` ApiClient),
    ``.kubectl(*args)`` (the cached kubectl with that kubeconfig), ``.server``,
    ``.node_names`` and ``.container_log(pod, container)``.
    """
    capture = request.config.pluginmanager.getplugin("capturemanager")
    live = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with live:
        bed = cluster.start(tmp_path_factory.mktemp("k8s"))
    try:
        yield bed
    finally:
        bed.stop()
