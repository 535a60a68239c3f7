"""Every pod of the chart meets the restricted Pod Security Standard; NetworkPolicies confine
workers and Kafka; the workers namespace is labelled so the API server enforces the standard."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart import render

WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet")


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in WORKLOADS
    ]


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What the restricted profile (Pod Security Standards, v1.33) would refuse."""
    problems = []
    pod = spec.get("securityContext") or {}
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append("host namespaces")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"hostPath volume {volume['name']}")
    for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
        ctx = container.get("securityContext") or {}
        name = container["name"]
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation not false")
        if not (ctx.get("runAsNonRoot") or pod.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot not set")
        if ctx.get("runAsUser", pod.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as uid 0")
        seccomp = (ctx.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp}")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities not dropped")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort")
    return problems


@pytest.mark.parametrize("values", [None, "all-on", "external-kafka"])
def test_every_pod_meets_the_restricted_standard(values: str | None) -> None:
    specs = pod_specs(render.template(values))
    assert specs
    for name, spec in specs:
        assert restricted_violations(spec) == [], name


def test_the_check_refuses_a_privileged_pod() -> None:
    _, spec = pod_specs(render.template())[0]
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert restricted_violations(spec)


def test_all_on_renders_every_component() -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in render.template("all-on")}
    for component in ("operator", "registry", "collector", "jaeger"):
        assert ("Deployment", f"sl-shutterline-{component}") in names
    for component in ("kafka", "minio", "postgresql"):
        assert ("StatefulSet", f"sl-shutterline-{component}") in names


def test_workers_namespace_enforces_the_restricted_standard() -> None:
    namespace = render.one(render.template(), "Namespace", "prompt")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def _peers(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return list(rule.get("from") or rule.get("to") or [])


def test_workers_reach_only_dns_backbone_apdb_collector_registry_and_kafka() -> None:
    docs = render.template("all-on")
    policy = render.one(docs, "NetworkPolicy", "workers")
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "prompt"
    assert spec["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/managed-by": "shutterline-operator"}
    }
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    egress = spec["egress"]
    cidrs = {p["ipBlock"]["cidr"] for rule in egress for p in _peers(rule) if "ipBlock" in p}
    assert cidrs == {"192.0.2.0/24", "198.51.100.10/32"}
    components = {
        p["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for rule in egress
        for p in _peers(rule)
        if "podSelector" in p
    }
    assert components == {None, "kafka", "registry", "collector"}  # None: kube-dns
    assert all(_peers(rule) for rule in egress), "every egress rule names its destination"


def test_kafka_accepts_only_relay_topic_job_registry_consumers_and_itself() -> None:
    policy = render.one(render.template("all-on"), "NetworkPolicy", "kafka")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    brokers, clients = spec["ingress"]
    assert {p["port"] for p in brokers["ports"]} == {9092, 9093}
    assert [p["port"] for p in clients["ports"]] == [9092]
    namespaces = [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in clients["from"]
        if "namespaceSelector" in p
    ]
    assert namespaces == ["prompt", "fink", "antares"]
    relay = clients["from"][0]["podSelector"]["matchLabels"]
    assert relay == {"app.kubernetes.io/managed-by": "shutterline-operator"}
    local = [
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for p in clients["from"]
        if "namespaceSelector" not in p
    ]
    assert local == ["kafka-topics", "registry"]
