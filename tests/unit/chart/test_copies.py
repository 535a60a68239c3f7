"""The chart's CRDs and RBAC are the operator's own files, byte for byte, and rendered as such."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.testbed.k8s import images
from tests.unit.chart import render

ROOT = images.REPO_ROOT


def test_chart_crds_are_the_repository_crds() -> None:
    source = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert source == ["promptconfig.yaml", "visit.yaml"], "crds/ holds the operator's CRDs"
    assert sorted(p.name for p in (render.CHART / "crds").glob("*.yaml")) == source
    for name in source:
        copy = render.CHART / "crds" / name
        assert copy.read_bytes() == (ROOT / "crds" / name).read_bytes(), f"crds/{name} drifted"


def _docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_chart_rbac_is_operator_rbac() -> None:
    source = ROOT / "operator" / "rbac" / "rbac.yaml"
    assert (render.CHART / "files" / "rbac.yaml").read_bytes() == source.read_bytes()
    rules = next(d for d in _docs(source) if d["kind"] == "ClusterRole")["rules"]
    rendered = render.one(render.template(), "ClusterRole", "operator")
    assert rendered["rules"] == rules
    binding = render.one(render.template(), "RoleBinding", "operator")
    assert binding["metadata"]["namespace"] == "prompt"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sl-shutterline-operator", "namespace": "shutterline"}
    ]
