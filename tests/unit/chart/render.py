"""Render the chart with the test bed's helm: ``helm template`` and ``helm lint`` as data."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.testbed.k8s import images, tools

__all__ = ["CHART", "CI_VALUES", "helm", "kinds", "lint", "one", "template"]

CHART = images.REPO_ROOT / "charts" / "shutterline"
CI_VALUES = {path.stem.removesuffix("-values"): path for path in (CHART / "ci").glob("*.yaml")}
NAMESPACE = "shutterline"


@functools.cache
def _helm() -> Path:
    return tools.ensure_tools()[1]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm (no cluster needed for template and lint)."""
    result = subprocess.run([str(_helm()), *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _value_args(values: str | None, sets: dict[str, str] | None) -> list[str]:
    args = ["-f", str(CI_VALUES[values])] if values else []
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


@functools.cache
def _template(values: str | None, sets: tuple[tuple[str, str], ...]) -> str:
    args = ["template", "sl", str(CHART), "--namespace", NAMESPACE, "--include-crds"]
    return helm(*args, *_value_args(values, dict(sets))).stdout


def template(values: str | None = None, **sets: str) -> list[dict[str, Any]]:
    """The rendered manifests (CRDs included) for a CI values file and ``--set`` pairs."""
    text = _template(values, tuple(sorted(sets.items())))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def lint(values: str | None = None, **sets: str) -> subprocess.CompletedProcess[str]:
    """``helm lint --strict`` (not raising: callers look at the outcome)."""
    args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    return helm(*args, *_value_args(values, sets), check=False)


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The manifests of one kind."""
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str) -> dict[str, Any]:
    """The one manifest of ``kind`` whose name ends with ``name_suffix``."""
    found = [d for d in kinds(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{kind} *{name_suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]
