"""Prometheus metrics and the health endpoints, on one small HTTP server.

``/metrics`` (Prometheus text), ``/healthz`` (the status loop has run recently) and
``/readyz`` (the cache has been filled from the API server) on ``SHUTTERLINE_OPERATOR_PORT``.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable

import prometheus_client

__all__ = [
    "API_ERRORS",
    "API_SECONDS",
    "CREATE_WAIT_SECONDS",
    "QUEUE_DEPTH",
    "RECONCILE_SECONDS",
    "VISITS",
    "VISIT_TO_JOB_SECONDS",
    "serve",
]

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
VISITS = prometheus_client.Gauge(
    "shutterline_visits", "Visits known to the operator, by phase", ["phase"]
)
QUEUE_DEPTH = prometheus_client.Gauge(
    "shutterline_queue_depth", "Visits waiting in the built-in queue", ["namespace", "instrument"]
)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "shutterline_reconcile_seconds", "Time of one reconcile step", ["step"], buckets=_FAST
)
VISIT_TO_JOB_SECONDS = prometheus_client.Histogram(
    "shutterline_visit_to_job_seconds",
    "Visit creation (as the operator saw it) to its Job created",
    buckets=_FAST,
)
CREATE_WAIT_SECONDS = prometheus_client.Histogram(
    "shutterline_create_wait_seconds",
    "A Visit's wait for a creator thread, from its watch event to the start of its step",
    buckets=_FAST,
)
API_SECONDS = prometheus_client.Histogram(
    "shutterline_api_request_seconds", "Kubernetes API requests", ["operation"], buckets=_FAST
)
API_ERRORS = prometheus_client.Counter(
    "shutterline_api_errors", "Failed Kubernetes API requests", ["operation", "status"]
)


def serve(
    port: int, alive: Callable[[], bool], ready: Callable[[], bool]
) -> http.server.ThreadingHTTPServer:
    """Serve metrics and health on ``port`` (0: a free port) in a daemon thread."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, code = prometheus_client.generate_latest(), 200
                kind = prometheus_client.CONTENT_TYPE_LATEST
            elif self.path.startswith(("/healthz", "/readyz")):
                ok = alive() if self.path.startswith("/healthz") else ready()
                body, code, kind = (
                    (b"ok\n", 200, "text/plain") if ok else (b"no\n", 503, "text/plain")
                )
            else:
                body, code, kind = b"not found\n", 404, "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def since(started: float) -> float:
    """Seconds since ``started`` (a `time.perf_counter` value)."""
    return time.perf_counter() - started
