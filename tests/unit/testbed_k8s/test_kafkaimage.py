"""The apache/kafka runtime: the image's paths stand for the cached Kafka's tools."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from tests.testbed.k8s import images, kafkaimage

pytestmark = pytest.mark.kafka


def test_kafka_image_runs_its_default_command_from_its_own_tree(tmp_path: Path) -> None:
    runtime = images.resolve("docker.io/apache/kafka:4.1.1")
    assert images.argv_for(runtime, [], []) == ["/etc/kafka/docker/run"]
    tree = runtime.files(tmp_path)
    assert set(tree) == set(kafkaimage.IMAGE_PATHS)
    assert (tree["/etc/kafka/docker"] / "run").stat().st_mode & 0o111
    assert (tree["/opt/kafka"] / "bin" / "kafka-topics.sh").exists()


def test_image_scripts_run_the_real_kafka_tools(tmp_path: Path) -> None:
    bin_dir = kafkaimage.files(tmp_path)["/opt/kafka"] / "bin"
    result = subprocess.run(
        [str(bin_dir / "kafka-storage.sh"), "random-uuid"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    uuid = result.stdout.strip()
    assert len(base64.urlsafe_b64decode(uuid + "==")) == 16
