"""The nightly known-object precompute: a CronJob of Indexed Jobs, one shard per index."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from shutterline.cli import main as cli_main
from tests.unit.chart import render


def _cronjob(**sets: str) -> dict[str, Any]:
    docs = render.template(**{"orbits.precompute.enabled": "true", **sets})
    return render.one(docs, "CronJob", "orbits-precompute")


def test_off_by_default() -> None:
    assert not render.kinds(render.template(), "CronJob")


def test_an_indexed_job_whose_pods_run_their_shard_into_the_backbone() -> None:
    cron = _cronjob(**{"orbits.precompute.shards": "6", "orbits.precompute.parallelism": "9"})
    kubernetes_validate.validate(cron, "1.33", strict=True)
    assert cron["metadata"]["namespace"] == "prompt"  # the workers namespace
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == 6 and job["parallelism"] == 6  # never more pods than shards
    assert job["maxFailedIndexes"] == 0  # a missing shard is a failed night, not a partial one
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--shard") + 1] == "$(JOB_COMPLETION_INDEX)"
    assert args[args.index("--shards") + 1] == "6"
    assert args[args.index("--repo") + 1] == "s3://backbone/repo"
    env = {e["name"]: e for e in container["env"]}
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert container["envFrom"] == [{"secretRef": {"name": "shutterline-backbone"}}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/work"}
    rule = job["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailIndex" and rule["onExitCodes"]["values"] == [65, 66]


def test_the_pod_arguments_are_the_clis() -> None:
    """The rendered arguments, index substituted as the kubelet does, parse as the CLI's."""
    container = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    argv = [a.replace("$(JOB_COMPLETION_INDEX)", "3") for a in container["args"]]
    args = cli_main.build_parser("orbits").parse_args(argv)
    assert (args.shard, args.shards, args.hours, args.piece_hours) == (3, 8, 12.0, 2.0)
    assert args.catalog == "s3://backbone/orbits/catalog.npz" and args.start > 60000.0


def test_schema_refuses_a_bad_night_start() -> None:
    for sets in ({"orbits.precompute.nightStartUtc": "25:00"}, {"orbits.precompute.shard": "2"}):
        result = render.lint(**sets)
        assert result.returncode != 0 and "schema" in result.stdout + result.stderr, sets
