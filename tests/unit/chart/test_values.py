"""values.schema.json covers every value, and refuses what it does not know."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml

from tests.unit.chart import render

FREE_FORM = (
    "instruments",
    "resources",
    "nodeSelector",
    "affinity",
    "config",
    "podLabels",
    "limits",
    "podAnnotations",
)


def leaves(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and key not in FREE_FORM:
            yield from leaves(value, path)
        else:
            yield path


def test_schema_describes_every_value() -> None:
    schema = json.loads((render.CHART / "values.schema.json").read_text())
    values = yaml.safe_load((render.CHART / "values.yaml").read_text())
    missing = []
    for path in leaves(values):
        node = schema
        for part in path.split("."):
            node = (node.get("properties") or {}).get(part)
            if node is None:
                missing.append(path)
                break
    assert missing == []


def test_schema_refuses_unknown_and_malformed_values() -> None:
    for sets in (
        {"kafak.replicas": "3"},
        {"kafka.antiAffinity.mode": "maybe"},
        {"kafka.replicas": "0"},
        {"kafka.clusterId": "not-an-id"},
        {"operator.workers": "0"},  # no thread would create Jobs
    ):
        result = render.lint(**sets)
        assert result.returncode != 0, sets
        assert "schema" in result.stdout + result.stderr, sets
