"""Headless Chromium from Debian's packages, unpacked into the cache, for the report tests.

``ensure_chromium`` asks apt which packages Chromium (pinned to `VERSION`) needs beyond what
the machine has, fetches exactly those ``.deb`` files with ``apt-get download`` and unpacks
them with ``dpkg-deb -x`` under ``~/.cache/shutterline/chromium/<VERSION>/`` (nothing is
installed system-wide, no root needed). A file lock makes concurrent sessions wait for one
another; a ``.complete`` marker is written last, so an interrupted unpack is redone.

The ``chromium`` fixture is a `Chromium`: ``dump_dom(url)`` returns the DOM after the page's
scripts ran, ``screenshot(url, path)`` writes a PNG of the rendered page.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["VERSION", "Chromium", "chromium", "ensure_chromium"]

#: The Debian 12 security-updates build the tests were written against.
VERSION = "156.0.8078.114-1~deb12u1"
CACHE = Path.home() / ".cache" / "shutterline" / "chromium"


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _needed() -> list[str]:
    """``name=version`` of every package apt would add to install Chromium `VERSION`."""
    cmd = ["apt-get", "install", "--simulate", "--no-install-recommends", f"chromium={VERSION}"]
    try:
        out = _run(cmd)
    except RuntimeError:
        _run(["apt-get", "update", "-q"])  # a fresh machine's package lists may be stale
        out = _run(cmd)
    found = re.findall(r"^Inst (\S+) (?:\[\S+\] )?\((\S+)", out, flags=re.MULTILINE)
    if not any(name == "chromium" for name, _ in found):
        raise RuntimeError(f"apt does not offer chromium={VERSION}:\n{out[-2000:]}")
    return [f"{name}={version}" for name, version in found]


def ensure_chromium(cache: Path = CACHE) -> Path:
    """The unpacked Chromium tree (fetched and unpacked first if it is not there)."""
    root = cache / VERSION
    marker = root / ".complete"
    if marker.is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be unpacking right now
        if marker.is_file():
            return root
        shutil.rmtree(root, ignore_errors=True)
        debs = root / "debs"
        debs.mkdir(parents=True)
        _run(["apt-get", "download", *_needed()], cwd=debs)
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg-deb", "-x", str(deb), str(root / "tree")])
        shutil.rmtree(debs)
        marker.write_text(VERSION + "\n")
    return root


@dataclasses.dataclass(frozen=True)
class Chromium:
    """A headless Chromium unpacked at ``root``."""

    root: Path

    @property
    def binary(self) -> Path:
        """The browser executable (Debian ships it under ``usr/lib/chromium``)."""
        return self.root / "tree" / "usr" / "lib" / "chromium" / "chromium"

    def env(self) -> dict[str, str]:
        """This process's environment plus the unpacked libraries on the loader's path."""
        # Every unpacked directory holding shared objects (pulseaudio keeps its own).
        libs = sorted({str(p.parent) for p in (self.root / "tree").rglob("*.so*")})
        old = os.environ.get("LD_LIBRARY_PATH")
        return {**os.environ, "LD_LIBRARY_PATH": ":".join(libs + ([old] if old else []))}

    def _run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(self.binary),
            "--headless",
            "--no-sandbox",  # the tests run as root in a container
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--user-data-dir=" + str(self.root / "profile"),
            "--virtual-time-budget=10000",
            *args,
        ]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=self.env(), check=False
        )

    def dump_dom(self, url: str, size: tuple[int, int] = (1200, 6000)) -> str:
        """The serialised DOM of ``url`` after its scripts ran, in a ``size`` window."""
        done = self._run("--dump-dom", f"--window-size={size[0]},{size[1]}", url)
        if done.returncode or not done.stdout:
            raise RuntimeError(f"chromium --dump-dom {url} failed: {done.stderr[-2000:]}")
        return done.stdout

    def screenshot(self, url: str, path: Path, size: tuple[int, int] = (1200, 6000)) -> Path:
        """A PNG of ``url`` rendered in a ``size`` (width, height) window."""
        done = self._run(f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url)
        if done.returncode or not path.is_file():
            raise RuntimeError(f"chromium --screenshot {url} failed: {done.stderr[-2000:]}")
        return path


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    """Headless Chromium `VERSION` (fetched into the cache on first use)."""
    browser = Chromium(ensure_chromium())
    if not browser.binary.is_file():
        raise RuntimeError(f"no chromium binary at {browser.binary}")
    yield browser
