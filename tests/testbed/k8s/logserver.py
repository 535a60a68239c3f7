"""The node agent's slice of the kubelet API: container logs, so ``kubectl logs`` works.

The API server reaches a node at its ``InternalIP`` and ``daemonEndpoints.kubeletEndpoint``
port with a client certificate from the test-bed CA; this server (TLS, that CA required of
clients) answers ``GET /containerLogs/<namespace>/<pod>/<container>`` with ``follow``,
``previous``, ``tailLines`` and ``limitBytes``. Nothing else of the kubelet API is served.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.testbed.k8s import containers

__all__ = ["Finder", "serve"]

# (namespace, pod, container) -> the container's record, or None.
Finder = Callable[[str, str, str], "containers.ContainerRun | None"]


def _log_bytes(path: Path, tail_lines: int | None, limit: int | None) -> bytes:
    data = path.read_bytes() if path.exists() else b""
    if tail_lines is not None:
        data = b"".join(data.splitlines(keepends=True)[-tail_lines:]) if tail_lines else b""
    return data[:limit] if limit is not None else data


def _handler(find: Finder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the agent's log is for pods, not for requests."""

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            run = find(*parts[1:4]) if len(parts) == 4 and parts[0] == "containerLogs" else None
            if run is None:
                self.send_error(404, "no such container on this node")
                return
            previous = query.get("previous") == "true"
            path = run.directory / f"{run.restart_count - 1 if previous else run.restart_count}.log"
            tail = int(query["tailLines"]) if "tailLines" in query else None
            limit = int(query["limitBytes"]) if "limitBytes" in query else None
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(_log_bytes(path, tail, limit))
            if query.get("follow") == "true" and not previous:
                self._follow(run, path)

        def _follow(self, run: containers.ContainerRun, path: Path) -> None:
            """Send what the container appends until it stops running."""
            offset = path.stat().st_size if path.exists() else 0
            while True:
                running = run.state == "running"
                with open(path, "rb") as log:
                    log.seek(offset)
                    chunk = log.read()
                if chunk:
                    offset += len(chunk)
                    self.wfile.write(chunk)
                    self.wfile.flush()
                if not running:
                    return
                time.sleep(0.2)

    return Handler


def serve(cert: Path, key: Path, client_ca: Path, find: Finder) -> ThreadingHTTPServer:
    """Start the log endpoint on a free loopback port (in a daemon thread); return it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(find))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(str(client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="logs", daemon=True).start()
    return server
