"""The env ConfigMap changes what a Job sends, not what its containers see."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate

from shutterline_operator.core import builders, envmap, names
from shutterline_operator.engine import cache as vcache
from tests.testbed.k8s import containerenv
from tests.unit.operator import objects

_SECRETS = {"backbone-s3": {"AWS_ACCESS_KEY_ID": "key"}, "apdb": {"url": "postgresql://apdb"}}


def _config(**spec: Any) -> dict[str, Any]:
    config = objects.config(**{"settings": {"SHUTTERLINE_LOG_LEVEL": "INFO"}, **spec})
    config["metadata"]["uid"] = "uid-simdecam"
    return config


def _resolved(job: dict[str, Any], maps: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each container's environment as the node agent (the kubelet's rules) resolves it."""
    template = job["spec"]["template"]
    meta = {**template["metadata"], "name": "visit-100007-0-abcde", "namespace": "prompt"}
    pod = {"metadata": meta, "spec": {**template["spec"], "nodeName": "node-0"}}

    def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
        return (maps if kind == "configmap" else _SECRETS).get(name)

    spec = template["spec"]
    return {
        c["name"]: containerenv.container_env(pod, c, lookup, {})
        for c in [*spec["initContainers"], *spec["containers"]]
    }


def _both(visit: dict[str, Any], config: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    env_map = builders.env_config_map(config)
    build = (visit, config, list(range(1, 63)), objects.TRACEPARENT, objects.NOW)
    return builders.build_job(*build), builders.build_job(*build, env_map), env_map


def test_every_container_sees_the_same_env_with_the_config_map() -> None:
    visit = objects.visit(detectors=list(range(1, 63)))
    inline, lean, env_map = _both(visit, _config())
    maps = {env_map["metadata"]["name"]: env_map["data"]}
    seen = _resolved(lean, maps)
    assert seen == _resolved(inline, {})
    assert set(seen) == {"telemetry", "alert-relay", "precache", "pipeline"}
    assert json.loads(seen["pipeline"]["SHUTTERLINE_VISIT_SPEC"]) == visit["spec"]
    assert seen["pipeline"]["SHUTTERLINE_REPO"] == "s3://backbone/repo"
    assert seen["pipeline"]["SHUTTERLINE_APDB"] == "postgresql://apdb"
    # Smaller: the shared variables once in the ConfigMap, the Visit spec once in the pod.
    assert len(json.dumps(lean)) < 0.8 * len(json.dumps(inline))


def test_secrets_stay_references_and_per_visit_values_stay_in_the_job() -> None:
    _, lean, env_map = _both(objects.visit(), _config())
    assert "postgresql" not in json.dumps(env_map)
    assert set(env_map["data"]).isdisjoint({"JOB_NAME", "TRACEPARENT", *envmap.ANNOTATIONS})
    annotations = lean["spec"]["template"]["metadata"]["annotations"]
    assert (
        json.loads(annotations[envmap.ANNOTATIONS["SHUTTERLINE_VISIT_SPEC"]])
        == (objects.visit()["spec"])
    )
    for container in lean["spec"]["template"]["spec"]["containers"]:
        assert container["envFrom"][-1] == {"configMapRef": {"name": env_map["metadata"]["name"]}}


def test_a_visit_override_stays_inline_and_wins() -> None:
    visit = objects.visit(overrides={"settings": {"SHUTTERLINE_LOG_LEVEL": "DEBUG"}})
    _, lean, env_map = _both(visit, _config())
    assert env_map["data"]["SHUTTERLINE_LOG_LEVEL"] == "INFO"
    seen = _resolved(lean, {env_map["metadata"]["name"]: env_map["data"]})
    assert {env["SHUTTERLINE_LOG_LEVEL"] for env in seen.values()} == {"DEBUG"}


def test_values_to_expand_stay_inline() -> None:
    _, lean, env_map = _both(objects.visit(), _config(settings={"SHUTTERLINE_X": "a-$(POD_NAME)"}))
    assert "SHUTTERLINE_X" not in env_map["data"]
    seen = _resolved(lean, {env_map["metadata"]["name"]: env_map["data"]})
    assert seen["pipeline"]["SHUTTERLINE_X"] == "a-visit-100007-0-abcde"


def test_config_map_is_named_by_content_owned_by_the_prompt_config_and_valid() -> None:
    config = _config()
    env_map = builders.env_config_map(config)
    assert builders.env_config_map(copy.deepcopy(config)) == env_map
    changed = builders.env_config_map(_config(rawWaitSeconds=30))
    assert changed["metadata"]["name"] != env_map["metadata"]["name"]
    assert env_map["immutable"] is True
    owner = env_map["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("PromptConfig", "uid-simdecam")
    assert env_map["metadata"]["labels"][names.LABEL_MANAGED_BY] == names.MANAGED_BY
    kubernetes_validate.validate(env_map, "1.33", strict=True)
    _, lean, _ = _both(objects.visit(), config)
    kubernetes_validate.validate(lean, "1.33", strict=True)


def test_the_cache_keeps_which_config_maps_a_job_reads() -> None:
    inline, lean, env_map = _both(objects.visit(), _config())
    name = env_map["metadata"]["name"]
    assert envmap.referenced(lean) == {name}
    assert envmap.referenced(inline) == set()  # the backbone Secret is no ConfigMap
    held = vcache.Cache()
    held.put_job(lean)
    (slimmed,) = held.jobs.values()
    assert envmap.referenced(slimmed) == {name}
    assert len(json.dumps(slimmed)) < 0.2 * len(json.dumps(lean))


def test_plan_makes_again_what_is_needed_and_deletes_what_is_not() -> None:
    held = {("ns", "a"), ("ns", "b"), ("other", "a")}
    used = {("ns", "a"), ("ns", "d")}
    current = {("other", "e"), ("ns", "a")}
    missing, stale = envmap.plan(held, used, current)
    assert missing == [("ns", "d"), ("other", "e")]
    assert stale == [("ns", "b"), ("other", "a")]
    assert envmap.plan(held, held, set()) == ([], [])


def test_a_deleted_config_map_is_kept_as_a_body_to_create_again() -> None:
    env_map = builders.env_config_map(_config())
    served = copy.deepcopy(env_map)
    served["metadata"].update(
        uid="u1", resourceVersion="12", creationTimestamp="2030-01-01T00:00:00Z"
    )
    held = vcache.Cache()
    held.put_map({"metadata": {"name": "chart-values", "namespace": "prompt"}, "data": {}})
    held.put_map(served)
    key = ("prompt", env_map["metadata"]["name"])
    assert set(held.maps) == {key}  # only env ConfigMaps (owned by a PromptConfig)
    held.maps_dirty = False
    held.put_map(served, deleted=True)
    assert held.maps_dirty and not held.maps
    assert held.gone_maps[key] == env_map  # no uid, resourceVersion or timestamps: creatable
    kubernetes_validate.validate(held.gone_maps[key], "1.33", strict=True)
    held.put_map(served)
    assert key in held.maps and not held.gone_maps
