"""Build or fetch pinned test-bed binaries once, into ``~/.cache/shutterline/testbed/``.

Every artefact lives in ``cache_dir(component, version)``; a finished build is marked by a
``.complete`` stamp so an interrupted one is redone rather than trusted. A file lock keeps two
test sessions from building the same thing at once. Progress goes to the real stderr (not
pytest's captured one) so a first run on a fresh machine shows what it is doing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

from tests.testbed import procs

__all__ = [
    "built_once",
    "ensure_services",
    "go_build",
    "locked",
    "main",
    "run_with_progress",
    "say",
]


def say(message: str) -> None:
    """Print a progress line on the terminal even while pytest captures output."""
    print(f"[testbed] {message}", file=sys.__stderr__, flush=True)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/.lock`` (blocks while another process builds)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_once(directory: Path) -> bool:
    """Whether a build into ``directory`` finished (its ``.complete`` stamp exists)."""
    return (directory / ".complete").exists()


def _stamp(directory: Path, seconds: float) -> None:
    (directory / ".complete").write_text(f"built in {seconds:.0f} s\n")


def run_with_progress(
    component: str,
    argv: Sequence[str],
    log: Path,
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> None:
    """Run a build command, counting its output lines on a progress bar; log everything.

    Raises `procs.ComponentError` with the log tail when the command fails.
    """
    if shutil.which(argv[0]) is None:
        raise procs.ComponentError(
            f"{component}: {argv[0]} not found on PATH; tests/testbed/install_debs.sh installs "
            "the JDK and Maven, Go comes with the machine image"
        )
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ, **(env or {}))
    with (
        open(log, "a") as out,
        tqdm(desc=f"[testbed] {what}", unit=" lines", file=sys.__stderr__, mininterval=2) as bar,
        subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            text=True,
            errors="replace",
        ) as proc,
    ):
        assert proc.stdout is not None
        out.write(f"$ {' '.join(argv)}\n")
        for line in proc.stdout:
            out.write(line)
            bar.update(1)
        code = proc.wait()
    if code != 0:
        raise procs.ComponentError(
            f"{component}: {what} failed (exit {code})\n--- tail of {log} ---\n{procs.tail(log)}"
        )


def go_build(
    component: str,
    package: str,
    version: str,
    binary: str,
    replaces: Mapping[str, str] | None = None,
) -> Path:
    """The binary of Go ``package`` at module ``version``, built once through the module proxy.

    Uses ``go install package@version``; a main module with ``replace`` directives (which
    ``go install`` refuses) is built from a throwaway module that requires it and repeats them.

    Parameters
    ----------
    component
        Name used in messages and as the cache folder (``testbed/<component>/<version>``).
    package
        Import path of the main package, e.g. ``github.com/minio/minio``.
    version
        Pinned module version or pseudo-version.
    binary
        Name of the produced executable.
    replaces
        ``replace`` directives (old path -> "new path version") the throwaway module must
        repeat from the main module's go.mod; ``go install`` refuses modules that have any.
    """
    home = procs.cache_dir(component, version)
    target = home / "bin" / binary
    with locked(home):
        if built_once(home) and target.exists():
            return target
        started = time.monotonic()
        say(f"building {component} {version} from its Go module (first run only)")
        env = {"GOBIN": str(home / "bin"), "GOFLAGS": "-buildvcs=false"}
        log = home / "build.log"
        if replaces:
            _build_in_module(component, package, version, home, target, env, replaces)
        else:
            run_with_progress(
                component, ["go", "install", "-v", f"{package}@{version}"], log, "go install", env
            )
        _stamp(home, time.monotonic() - started)
        say(f"{component} built in {time.monotonic() - started:.0f} s: {target}")
        return target


def _build_in_module(
    component: str,
    package: str,
    version: str,
    home: Path,
    target: Path,
    env: dict[str, str],
    replaces: Mapping[str, str],
) -> None:
    """Build ``package`` inside a throwaway module that requires it at ``version``."""
    src = home / "src"
    src.mkdir(exist_ok=True)
    log = home / "build.log"
    go_env = {k: v for k, v in env.items() if k != "GOBIN"}
    lines = ["module testbed.local/build", ""]
    lines += [f"replace {old} => {new}" for old, new in replaces.items()]
    (src / "go.mod").write_text("\n".join(lines) + "\n")
    run_with_progress(component, ["go", "get", f"{package}@{version}"], log, "go get", go_env, src)
    run_with_progress(
        component,
        ["go", "build", "-v", "-o", str(target), package],
        log,
        "go build",
        go_env,
        src,
    )


def ensure_services() -> dict[str, Path]:
    """Build or fetch every service binary (MinIO, Kafka jars, Jaeger); cached ones are kept.

    Checks the Debian packages too, so a missing PostgreSQL is reported before any test.
    """
    # Imported here: the component modules import this one.
    from tests.testbed import kafka, otlp, postgres, registry, s3

    started = time.monotonic()
    found = {
        "postgres": postgres.find_bindir(),
        "minio": s3.ensure_built(),
        "kafka": kafka.ensure_fetched(),
        "jaeger": otlp.ensure_built(),
        "registry": registry.ensure_fetched(),
    }
    say(f"service components ready in {time.monotonic() - started:.0f} s")
    return found


def main() -> None:
    """``python -m tests.testbed.builds``: fetch and build the services before the tests."""
    for name, path in ensure_services().items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
