"""Session fixtures for the scale components: Kueue and KWOK on the Kubernetes test bed.

``kueue_controller`` installs Kueue's CRDs and webhooks on ``k8s_cluster`` and runs its
controller manager (`tests.testbed.kueue.Kueue`: ``setup_queues``, ``priority_class``,
``workloads``). ``kwok_nodes`` adds fake nodes simulated by KWOK, tainted so that only pods
that tolerate them land there (`tests.testbed.kwok.Kwok`: ``toleration()``,
``node_selector()``). Both build their pinned binary on first use (a few minutes, cached).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.testbed import kueue, kwok
from tests.testbed.k8s import cluster

__all__ = ["kueue_controller", "kwok_nodes"]


def _live(request: pytest.FixtureRequest) -> contextlib.AbstractContextManager[object]:
    """Capture off, so a first build's progress shows."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    return capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()


@pytest.fixture(scope="session")
def kueue_controller(
    request: pytest.FixtureRequest,
    k8s_cluster: cluster.Cluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[kueue.Kueue]:
    """Kueue's controller manager against the test bed's API server."""
    with _live(request):
        controller = kueue.start(k8s_cluster, tmp_path_factory.mktemp("kueue"))
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def kwok_nodes(
    request: pytest.FixtureRequest,
    k8s_cluster: cluster.Cluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[kwok.Kwok]:
    """Four tainted fake nodes whose pods run 1 s (after 0.2 s of init containers)."""
    with _live(request):
        simulator = kwok.start(
            k8s_cluster, tmp_path_factory.mktemp("kwok"), nodes=4, init_ms=200, run_ms=1000
        )
    try:
        yield simulator
    finally:
        simulator.stop()
