"""The chart lints clean and renders manifests the Kubernetes 1.33 API would accept as written.

Built-in kinds are validated with kubernetes-validate in strict mode (unknown fields are
errors); custom resources (PromptConfigs) against the CRDs the chart ships, with unknown
fields refused the way the API server's strict field validation refuses them.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.unit.chart import render

VARIANTS = [None, "all-on", "external-kafka"]


@pytest.mark.parametrize("values", VARIANTS)
def test_helm_lint_is_clean(values: str | None) -> None:
    result = render.lint(values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused wherever the CRD lists its properties."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in schema and "additionalProperties" not in schema and not preserve:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def _crd_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> openAPIV3Schema of the chart's CRDs."""
    schemas = {}
    for path in sorted((render.CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = _strict(version["schema"]["openAPIV3Schema"])
    return schemas


@pytest.mark.parametrize("values", VARIANTS)
def test_every_manifest_validates_for_kubernetes_1_33(values: str | None) -> None:
    crds = _crd_schemas()
    docs = render.template(values)
    custom = 0
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in crds:
            jsonschema.validate(doc, crds[key])
            custom += 1
        else:
            kubernetes_validate.validate(doc, "1.33", strict=True)
    assert custom == len(render.kinds(docs, "PromptConfig")) > 0


def test_strict_validation_catches_a_misspelt_field() -> None:
    """The validation above can fail: a typo in a pod spec and in a PromptConfig."""
    docs = render.template()
    sts = render.one(docs, "StatefulSet", "kafka")
    sts["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, "1.33", strict=True)
    config = render.kinds(docs, "PromptConfig")[0]
    config["spec"]["rawWaitSecs"] = 5
    schema = _crd_schemas()[(config["apiVersion"], "PromptConfig")]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)


def test_promptconfig_per_instrument_filled_from_values() -> None:
    configs = {
        c["metadata"]["name"]: c for c in render.kinds(render.template("all-on"), "PromptConfig")
    }
    assert set(configs) == {"simdecam", "lsstcam"}
    spec = configs["simdecam"]["spec"]
    assert configs["simdecam"]["metadata"]["namespace"] == "prompt"
    assert spec["instrument"] == "SimDECam"
    assert spec["images"] == {
        "pipeline": "ghcr.io/shutterline/shutterline-pipeline:0.1.0",
        "pullPolicy": "IfNotPresent",
        "pullSecrets": ["site-registry"],
    }
    assert spec["kafka"]["bootstrap"] == (
        "sl-shutterline-kafka-headless.shutterline.svc.cluster.local:9092"
    )
    assert spec["kafka"]["schemaRegistryUrl"].endswith(":8080/apis/ccompat/v7")
    assert spec["telemetry"]["otlpEndpoint"].startswith("http://sl-shutterline-collector.")
    assert spec["backbone"] == {
        "repo": "s3://backbone/repo",
        "credentialsSecret": "shutterline-backbone",
        "s3Endpoint": "https://s3.example.org",
    }
    assert spec["export"] == [
        "calexp",
        "calexp_background",
        "difference_image",
        "src",
        "dia_source",
    ]
    assert configs["lsstcam"]["spec"]["queueing"] == {"mode": "kueue", "queueName": "prompt"}


def test_external_services_replace_the_chart_ones() -> None:
    docs = render.template("external-kafka")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert not any("kafka" in name or "registry" in name for _, name in names)
    spec = render.kinds(docs, "PromptConfig")[0]["spec"]
    assert spec["kafka"]["bootstrap"].startswith("kafka-0.kafka.example.org:9092,")
    assert spec["kafka"]["schemaRegistryUrl"] == "https://registry.example.org/apis/ccompat/v7"
    assert spec["telemetry"]["otlpEndpoint"] == "https://otel.example.org:4318"


def test_existing_kafka_is_required_when_the_chart_runs_none() -> None:
    result = render.helm(
        "template", "sl", str(render.CHART), "--set", "kafka.enabled=false", check=False
    )
    assert result.returncode != 0
    assert "kafka.external.bootstrapServers is required" in result.stderr


def test_alert_stream_switch_takes_kafka_out_of_every_promptconfig() -> None:
    configs = render.kinds(
        render.template("all-on", **{"alertStream.enabled": "false"}), "PromptConfig"
    )
    assert configs and all("kafka" not in c["spec"] for c in configs)
    assert all(
        "kafka" in c["spec"] for c in render.kinds(render.template("all-on"), "PromptConfig")
    )


def test_operator_deployment_runs_the_measured_creator_count() -> None:
    """A Helm install gets the creator threads the operator's bursts were measured with."""
    from shutterline_operator import handlers

    deployments = render.kinds(render.template(), "Deployment")
    operator = next(d for d in deployments if d["metadata"]["name"].endswith("-operator"))
    container = operator["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SHUTTERLINE_OPERATOR_WORKERS"] == str(handlers.CREATORS)
