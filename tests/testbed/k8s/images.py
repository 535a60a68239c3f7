"""Which local entry point a container ``image`` runs on the node agent (there is no runtime).

An image is matched on its repository's last path component (registry, tag and digest are
ignored): ``ghcr.io/acme/shutterline-pipeline:0.3`` and ``shutterline-pipeline`` are the same
to the agent. Each `Runtime` says which directories go first on ``PATH`` and what to run when
the pod gives no ``command`` (the image's entry point). To support another image, add an entry
to `RUNTIMES` (see docs/testbed.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.k8s import kafkaimage

__all__ = [
    "REPO_ROOT",
    "RUNTIMES",
    "Runtime",
    "UnknownImageError",
    "argv_for",
    "repository",
    "resolve",
]

REPO_ROOT = Path(__file__).resolve().parents[3]
_VENV_BIN = str(Path(sys.executable).parent)
_HOST_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_VENV_PATH = (_VENV_BIN, *_HOST_PATH)


class UnknownImageError(LookupError):
    """The image names no entry point this node agent knows."""


@dataclass(frozen=True)
class Runtime:
    """How the agent runs containers of one image: its ENTRYPOINT, CMD and ``PATH``.

    ``tree``, if set, lays out the image's own files for a container (given its directory)
    and maps each image path to the host path standing in for it.
    """

    suffix: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    path: tuple[str, ...] = _HOST_PATH
    tree: Callable[[Path], dict[str, Path]] | None = None

    def path_value(self) -> str:
        """The container's ``PATH``."""
        return ":".join(self.path)

    def files(self, container_dir: Path) -> dict[str, Path]:
        """Image path -> host path of the image's files (none for most runtimes)."""
        return self.tree(container_dir) if self.tree is not None else {}


# The project's images run from this checkout's virtual environment (the same code the image
# would hold); 'busybox'-like images run shell commands with the host's /bin/sh and tools;
# 'apache/kafka' runs the test bed's cached Kafka behind the official image's paths.
RUNTIMES: tuple[Runtime, ...] = (
    Runtime("shutterline-pipeline", ("shutterline",), (), _VENV_PATH),
    # The ENTRYPOINTs of operator/Dockerfile and pipeline-image/Dockerfile (a test keeps
    # them equal).
    Runtime("shutterline-operator", ("python", "-m", "shutterline_operator"), (), _VENV_PATH),
    Runtime("python", (), ("python3",), _VENV_PATH),
    Runtime("kafka", (), ("/etc/kafka/docker/run",), _HOST_PATH, kafkaimage.files),
    Runtime("busybox", (), ("sh",)),
    Runtime("alpine", (), ("/bin/sh",)),
    Runtime("debian", (), ("bash",)),
)


def repository(image: str) -> str:
    """The last path component of ``image``'s repository, without tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def resolve(image: str) -> Runtime:
    """The `Runtime` for ``image``; raise `UnknownImageError` naming it if none matches."""
    repo = repository(image)
    for runtime in RUNTIMES:
        if repo.endswith(runtime.suffix):
            return runtime
    known = ", ".join(runtime.suffix for runtime in RUNTIMES)
    raise UnknownImageError(f"image {image!r} is not known to the test-bed node agent ({known})")


def argv_for(runtime: Runtime, command: list[str], args: list[str]) -> list[str]:
    """The process argv the kubelet would run.

    ``command`` replaces the image's ENTRYPOINT (and drops its CMD); ``args`` replaces CMD.
    """
    if command:
        return [*command, *args]
    return [*runtime.entrypoint, *(args or runtime.cmd)]
