"""The example resources under `examples/`, read once, so tests use what users apply."""

from __future__ import annotations

import copy
import functools
import pathlib
from typing import Any

import yaml

__all__ = ["visit_spec"]

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


@functools.cache
def _visit() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / "visit.yaml").read_text())
    return body


def visit_spec(**overrides: Any) -> dict[str, Any]:
    """The spec of `examples/visit.yaml` (a fresh copy), with `overrides` applied."""
    spec = copy.deepcopy(_visit()["spec"])
    spec.update(overrides)
    return spec
