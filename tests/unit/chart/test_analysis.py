"""The chart's PriorityClasses and the analysis block of every PromptConfig, and what the
operator builds from the rendered PromptConfig: prompt pods above analysis pods."""

from __future__ import annotations

from typing import Any

from shutterline_operator.core import analysis, builders
from tests.unit.chart import render
from tests.unit.operator import objects


def _classes(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in render.kinds(docs, "PriorityClass")}


def _prompt_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return render.one(docs, "PromptConfig", "simdecam")


def test_prompt_class_is_above_the_preemptible_analysis_class() -> None:
    classes = _classes(render.template())
    prompt, low = classes["shutterline-prompt"], classes["shutterline-analysis"]
    assert prompt["value"] > 0 > low["value"]
    assert prompt["preemptionPolicy"] == "PreemptLowerPriority"
    assert low["preemptionPolicy"] == "Never"
    assert not prompt["globalDefault"] and not low["globalDefault"]
    assert _classes(render.template(**{"priorityClasses.create": "false"})) == {}


def test_every_promptconfig_gets_the_classes_and_the_analysis_block() -> None:
    spec = _prompt_config(render.template())["spec"]
    assert spec["priorityClassName"] == "shutterline-prompt"
    block = spec["analysis"]
    assert block["enabled"] is True
    assert block["priorityClassName"] == "shutterline-analysis"
    assert block["limits"]["fwhm"] == {"max": 2.0}
    assert block["resources"]["requests"]["memory"] == "2Gi"
    # What the analysis pod reads (docs/architecture.md, "The analysis pod").
    assert {"calexp", "src", "difference_image", "dia_source"} <= set(spec["export"])
    renamed = render.template(**{"priorityClasses.analysis.name": "site-low"})
    assert _prompt_config(renamed)["spec"]["analysis"]["priorityClassName"] == "site-low"


def test_an_instrument_overrides_fields_of_the_analysis_block() -> None:
    docs = render.template(
        **{
            "instruments.SimDECam.analysis.enabled": "false",
            "instruments.SimDECam.analysis.limits.zeroPoint.min": "31",
        }
    )
    block = _prompt_config(docs)["spec"]["analysis"]
    assert block["enabled"] is False
    assert block["limits"]["zeroPoint"] == {"min": 31}
    assert block["limits"]["fwhm"] == {"max": 2.0}  # the rest of the chart's block stays


def test_jobs_built_from_the_rendered_promptconfig_order_prompt_above_analysis() -> None:
    docs = render.template()
    config = _prompt_config(docs)
    values = {name: c["value"] for name, c in _classes(docs).items()}
    visit = objects.visit()
    prompt = builders.build_job(visit, config, [1, 2], objects.TRACEPARENT, objects.NOW)
    qa_job = analysis.build_analysis_job(visit, config, [1, 2], objects.TRACEPARENT)
    prompt_class = prompt["spec"]["template"]["spec"]["priorityClassName"]
    analysis_class = qa_job["spec"]["template"]["spec"]["priorityClassName"]
    assert values[prompt_class] > values[analysis_class]
    annotations = qa_job["spec"]["template"]["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true"
    main = qa_job["spec"]["template"]["spec"]["containers"][0]
    assert main["resources"]["limits"] == {"memory": "4Gi"}


def test_schema_refuses_malformed_analysis_values() -> None:
    for sets in (
        {"analysis.limits.fwhm.maximum": "1.4"},
        {"analysis.deadlineSeconds": "0"},
        {"priorityClasses.analysis.value": "low"},
        {"analysis.enabeld": "true"},
    ):
        result = render.lint(**sets)
        assert result.returncode != 0, sets
        assert "schema" in result.stdout + result.stderr, sets
