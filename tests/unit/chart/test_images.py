"""The two Dockerfiles: hadolint clean, multi-stage, pinned, non-root, locked, and their entry
points the ones the test bed's node agent runs for these images."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.testbed.k8s import images

HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = {
    "shutterline-operator": images.REPO_ROOT / "operator" / "Dockerfile",
    "shutterline-pipeline": images.REPO_ROOT / "pipeline-image" / "Dockerfile",
}


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def stages(text: str) -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split at each FROM."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    out: list[list[str]] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        out[-1].append(line)
    return out


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_is_clean(image: str) -> None:
    result = hadolint(DOCKERFILES[image])
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_hadolint_refuses_a_careless_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install kopf\nCMD kopf run x.py\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3025"):
        assert rule in result.stdout


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_is_multi_stage_pinned_non_root_and_locked(image: str) -> None:
    build, final = stages(DOCKERFILES[image].read_text())[-2:]
    for stage in (build, final):
        base = stage[0].split()[1]
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm", base), base
    assert any("uv sync --frozen" in line for line in build)
    assert not any(
        re.search(r"\b(uv|pip install|apt-get|gcc|build-essential)\b", line)
        for line in final
        if not line.startswith("ENV")
    ), final
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] == "10001"
    assert any(line.startswith("COPY --from=build /src/.venv") for line in final)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_node_agent_runs_the_images_entry_point(image: str) -> None:
    final = stages(DOCKERFILES[image].read_text())[-1]
    entrypoint = next(line for line in final if line.startswith("ENTRYPOINT "))
    argv = json.loads(entrypoint.removeprefix("ENTRYPOINT "))
    assert list(images.resolve(f"ghcr.io/shutterline/{image}:0.1.0").entrypoint) == argv
