"""A real S3 server on loopback: MinIO built from its Go module at a pinned commit.

``start(state_dir)`` builds MinIO once (cached), starts it on a free port with its data under
``state_dir`` and returns an `S3Server` handle; ``handle.stop()`` ends it.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.testbed import builds, procs

__all__ = ["MINIO_PACKAGE", "MINIO_VERSION", "S3Server", "ensure_built", "start"]

MINIO_PACKAGE = "github.com/minio/minio"
# MinIO publishes no semver tags, so the Go proxy knows it by pseudo-version only; this one is
# the last commit of the community repository (2026-02-12), pinned for reproducibility.
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
REGION = "us-east-1"
_bucket_counter = itertools.count()


def ensure_built() -> Path:
    """The cached MinIO server binary, built on first use (several minutes, with progress)."""
    return builds.go_build("minio", MINIO_PACKAGE, MINIO_VERSION, "minio")


@dataclass
class S3Server:
    """A running S3 endpoint: credentials, clients and fresh buckets for the tests."""

    endpoint_url: str
    access_key: str
    secret_key: str
    process: procs.ManagedProcess
    region: str = REGION
    buckets: list[str] = field(default_factory=list)

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing, fixed region)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def make_bucket(self, prefix: str) -> str:
        """Create a new empty bucket named ``<prefix>-<unique suffix>`` and return its name."""
        clean = "".join(c if c.isalnum() or c == "-" else "-" for c in prefix.lower())[:30]
        name = f"{clean.strip('-') or 'bucket'}-{os.getpid()}-{next(_bucket_counter)}"
        name = f"{name}-{secrets.token_hex(3)}"
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 and lsst-resources at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "S3_ENDPOINT_URL": self.endpoint_url,
        }

    def stop(self) -> None:
        """Stop the server (its data directory stays for post-mortem reading)."""
        self.process.stop()


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/minio/health/ready", timeout=1) as response:
        return bool(response.status == 200)


def _secret(state_dir: Path) -> str:
    """The root secret for ``state_dir``: made once, so a restart on the same data works."""
    path = state_dir / "secret"
    if not path.exists():
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()


def start(state_dir: Path, timeout: float = 60.0) -> S3Server:
    """Build MinIO if needed and start it on a free loopback port with data in ``state_dir``.

    Raises `procs.ComponentError` naming ``minio`` with its log tail if it does not come up.
    """
    binary = ensure_built()
    state_dir.mkdir(parents=True, exist_ok=True)
    port, console = procs.free_port(), procs.free_port()
    access, secret = "shutterline", _secret(state_dir)
    env = {
        "MINIO_ROOT_USER": access,
        "MINIO_ROOT_PASSWORD": secret,
        "MINIO_REGION": REGION,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
    }
    argv = [str(binary), "server", "--quiet", "--address", f"127.0.0.1:{port}"]
    argv += ["--console-address", f"127.0.0.1:{console}", str(state_dir / "data")]
    log = state_dir / "minio.log"
    process = procs.ManagedProcess("minio", argv, log, env=env).start()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    procs.wait_process_ready(process, lambda: _healthy(url), timeout, "minio (S3 server)")
    builds.say(f"minio ready on {url} in {time.monotonic() - started:.1f} s")
    return S3Server(url, access, secret, process)
