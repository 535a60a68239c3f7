"""Path rewriting, variable expansion, downward API and image mapping of the node agent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.testbed.k8s import build, containerenv, images

MOUNTS = [
    containerenv.Mount("/data", Path("/host/d")),
    containerenv.Mount("/data/sub", Path("/host/s")),
    containerenv.Mount("/root", Path("/root/state/r")),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/data", "/host/d"),
        ("--out=/data/x.fits", "--out=/host/d/x.fits"),
        ("open('/data/sub/y')", "open('/host/s/y')"),
        ("/data2 /x/data /data.bak", "/data2 /x/data /data.bak"),
        ("a:/data:b", "a:/host/d:b"),
        ("/root/q", "/root/state/r/q"),
    ],
)
def test_rewrite_replaces_whole_mount_paths_only(text: str, expected: str) -> None:
    assert containerenv.rewrite(text, MOUNTS) == expected


def test_mount_env_names_each_mount_and_maps_all() -> None:
    env = containerenv.mount_env(MOUNTS)
    assert env["TESTBED_MOUNT_DATA_SUB"] == "/host/s"
    assert json.loads(env["TESTBED_MOUNTS"])["/root"] == "/root/state/r"


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1"}
    assert containerenv.expand("$(A)-$(B)-$$(A)", env) == "1-$(B)-$(A)"


def test_field_value_reads_labels_annotations_and_pod_ip() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "namespace": "n",
            "uid": "u",
            "labels": {"a": "b"},
            "annotations": {"k.io/x": "y"},
        },
        "spec": {"nodeName": "n0"},
    }
    assert containerenv.field_value(pod, "metadata.labels['a']") == "b"
    assert containerenv.field_value(pod, "metadata.annotations['k.io/x']") == "y"
    assert containerenv.field_value(pod, "status.podIP") == "127.0.0.1"
    with pytest.raises(containerenv.ContainerConfigError, match=r"spec\.bogus"):
        containerenv.field_value(pod, "spec.bogus")


def test_images_map_by_repository_suffix() -> None:
    assert images.repository("ghcr.io:443/acme/shutterline-pipeline:0.3@sha256:ab") == (
        "shutterline-pipeline"
    )
    assert images.resolve("shutterline-pipeline").entrypoint == ("shutterline",)
    busybox = images.resolve("docker.io/library/busybox:1.36")
    assert images.argv_for(busybox, [], ["sh", "-c", "x"]) == ["sh", "-c", "x"]
    assert images.argv_for(busybox, [], []) == ["sh"]
    pipeline = images.resolve("shutterline-pipeline")
    assert images.argv_for(pipeline, [], ["run", "--visit", "7"]) == [
        "shutterline",
        "run",
        "--visit",
        "7",
    ]
    assert images.argv_for(pipeline, ["python", "-m", "x"], ["a"]) == ["python", "-m", "x", "a"]
    with pytest.raises(images.UnknownImageError, match="nginx"):
        images.resolve("nginx:1.27")


def test_build_module_replaces_every_staging_module() -> None:
    gomod = (
        "module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n"
        "\tk8s.io/kms => ./staging/src/k8s.io/kms\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n"
    )
    text = build.kubernetes_build_gomod(gomod, "v1.33.13", "v0.33.13")
    assert "require k8s.io/kubernetes v1.33.13" in text
    assert "\tk8s.io/api => k8s.io/api v0.33.13" in text
    assert "\tk8s.io/kms => k8s.io/kms v0.33.13" in text
    assert "github.com/x/y" not in text
