"""The kopf edge: the operator registers watch handlers only, so the diff base kopf would
build on every event (`handlers.WatchOnlyDiffBase` skips it) is never read."""

from __future__ import annotations

import kopf

from shutterline_operator import handlers


def test_only_watch_handlers_are_registered() -> None:
    """Change or daemon handlers read kopf's diff base: adding one needs kopf's storage."""
    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers(), "the watch handlers were not registered"
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()


def test_the_diff_base_is_empty_and_nothing_is_stored() -> None:
    body = kopf.Body({"metadata": {"name": "v1", "labels": {"a": "b"}}, "spec": {"x": [1]}})
    storage = handlers.WatchOnlyDiffBase()
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=kopf.BodyEssence({"spec": {}}))
    assert not patch
