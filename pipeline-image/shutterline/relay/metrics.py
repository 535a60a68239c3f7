"""Prometheus metrics of the relay (scraped from ``SHUTTERLINE_RELAY_METRICS_PORT``).

Defined once per process on the default registry, so several relays in one process (the
embedded run relays visit after visit) add to the same series.
"""

from __future__ import annotations

import prometheus_client as prom

__all__ = [
    "BROKER_UP",
    "BYTES",
    "DELIVERY_ERRORS",
    "IN_FLIGHT_BYTES",
    "IN_FLIGHT_PACKETS",
    "LATENCY",
    "PACKETS",
    "QUARANTINED",
    "RETRIES",
    "SPOOL_DEPTH",
    "serve",
]

PACKETS = prom.Counter(
    "shutterline_relay_packets", "Alert packets delivered to Kafka (acknowledged by acks=all)"
)
BYTES = prom.Counter("shutterline_relay_bytes", "Bytes of alert packets delivered to Kafka")
LATENCY = prom.Histogram(
    "shutterline_relay_delivery_latency_seconds",
    "From a packet's rename into the spool to its successful delivery report",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
SPOOL_DEPTH = prom.Gauge(
    "shutterline_relay_spool_depth", "Packets in the spool at the last scan (in flight included)"
)
IN_FLIGHT_PACKETS = prom.Gauge(
    "shutterline_relay_in_flight_packets", "Packets handed to the producer, not yet reported"
)
IN_FLIGHT_BYTES = prom.Gauge(
    "shutterline_relay_in_flight_bytes", "Bytes handed to the producer, not yet reported"
)
RETRIES = prom.Counter(
    "shutterline_relay_retries",
    "Packets produced again after a failed delivery report, plus the producer's own resends",
)
DELIVERY_ERRORS = prom.Counter(
    "shutterline_relay_delivery_errors", "Failed delivery reports (the packet stays spooled)"
)
QUARANTINED = prom.Counter(
    "shutterline_relay_quarantined", "Corrupt packets moved to the spool's quarantine"
)
BROKER_UP = prom.Gauge(
    "shutterline_relay_broker_up", "1 while the broker answers, 0 while it is unreachable"
)


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` (all interfaces, for the pod's scraper)."""
    prom.start_http_server(port)
