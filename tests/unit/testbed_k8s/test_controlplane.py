"""A control plane that cannot start says which component failed and shows its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testbed import procs
from tests.testbed.k8s import build, controlplane


def test_start_failure_names_the_component_with_its_log_tail(tmp_path: Path) -> None:
    # Failure injection: an 'etcd' that prints a complaint and exits at once.
    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\necho 'etcd: cannot open data dir: injected failure'\nexit 2\n")
    fake.chmod(0o755)
    missing = tmp_path / "never-started"
    binaries = build.Binaries(fake, missing, missing, missing, missing, missing)
    with pytest.raises(procs.ComponentError) as failure:
        controlplane.start(tmp_path / "state", binaries, timeout=10)
    message = str(failure.value)
    assert message.startswith("etcd exited with code 2")
    assert "injected failure" in message
