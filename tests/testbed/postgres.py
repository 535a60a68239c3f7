"""Debian's PostgreSQL on loopback: a throwaway cluster made with ``initdb`` per start.

``start(state_dir)`` initialises a cluster (trust authentication, 127.0.0.1 only, a free
port) and runs ``postgres`` in the foreground under a `procs.ManagedProcess`; the returned
`PostgresServer` creates fresh databases and ``stop()`` shuts it down fast. PostgreSQL refuses
to run as root, so when the tests run as root the cluster belongs to the ``postgres`` system
user (created if missing) and lives in a directory that user can reach.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import builds, procs

__all__ = ["PostgresServer", "find_bindir", "start"]

SUPERUSER = "shutterline"
RUN_AS = "postgres"
_MISSING = (
    "postgresql: initdb/postgres not found; install Debian's server with "
    "`apt-get install postgresql` (or run tests/testbed/install_debs.sh)"
)


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<N>/bin`` (or the one holding ``initdb`` on PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    on_path = shutil.which("initdb")
    if on_path is not None:
        bindir = Path(on_path).resolve().parent
        if (bindir / "postgres").exists():
            return bindir
    raise procs.ComponentError(_MISSING)


@dataclass
class PostgresServer:
    """A running PostgreSQL cluster reachable over TCP on 127.0.0.1 with trust auth."""

    host: str
    port: int
    user: str
    process: procs.ManagedProcess
    data_dir: Path

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string for ``database``."""
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def env(self) -> dict[str, str]:
        """libpq environment variables for this server (for the test bed's env file)."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}

    def create_database(self, name_prefix: str) -> str:
        """Create a new empty database and return its SQLAlchemy URL (psycopg2 driver)."""
        import psycopg2

        clean = "".join(c if c.isalnum() else "_" for c in name_prefix.lower())[:40]
        name = f"{clean or 'db'}_{secrets.token_hex(4)}"
        conn = psycopg2.connect(self.dsn())
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{name}"

    def stop(self) -> None:
        """Fast shutdown (SIGINT ends sessions and checkpoints), then remove the cluster."""
        proc = self.process.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                self.process.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _run_as_prefix() -> list[str]:
    """The argv prefix that drops root to the ``postgres`` user (empty when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", RUN_AS], check=True
        )
    return ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", "--"]


def _make_data_root() -> Path:
    """A private directory the server user owns; outside pytest's root-only temp tree."""
    root = Path(tempfile.mkdtemp(prefix="shutterline-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RUN_AS)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    return root


def _initdb(bindir: Path, data: Path, prefix: list[str], log: Path) -> None:
    argv = [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER]
    argv += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
    result = subprocess.run(argv, capture_output=True, text=True)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise procs.ComponentError(
            f"postgresql: initdb failed (exit {result.returncode})\n"
            f"--- tail of {log} ---\n{procs.tail(log)}"
        )
    # Only TCP on 127.0.0.1 is allowed in: no other address, no remote host.
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")


def _accepts(port: int) -> bool:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres")
    conn.close()
    return True


def start(state_dir: Path, timeout: float = 60.0) -> PostgresServer:
    """Initialise and start a PostgreSQL cluster on a free port; logs go to ``state_dir``.

    Raises `procs.ComponentError` naming ``postgresql`` with its log tail on failure.
    """
    bindir = find_bindir()
    state_dir.mkdir(parents=True, exist_ok=True)
    prefix = _run_as_prefix()
    root = _make_data_root()
    # Recorded so a separate `down` can remove the cluster if this process is gone by then.
    (state_dir / "data-root").write_text(f"{root}\n")
    data = root / "data"
    started = time.monotonic()
    try:
        _initdb(bindir, data, prefix, state_dir / "initdb.log")
    except procs.ComponentError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    port = procs.free_port()
    argv = [*prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port)]
    argv += ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}"]
    # A test database needs no durability; skipping fsync keeps DDL-heavy tests fast.
    argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    argv += ["-c", "max_connections=200"]
    process = procs.ManagedProcess("postgresql", argv, state_dir / "postgres.log").start()
    try:
        procs.wait_process_ready(process, lambda: _accepts(port), timeout, "postgresql")
    except procs.ComponentError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    builds.say(f"postgresql ready on 127.0.0.1:{port} in {time.monotonic() - started:.1f} s")
    return PostgresServer("127.0.0.1", port, SUPERUSER, process, root)
