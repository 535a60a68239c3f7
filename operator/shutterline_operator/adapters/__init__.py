"""Edges: Kubernetes API calls, Events, Prometheus metrics and health, the root-span exporter.
They carry out what the engine decided and make no decisions; nothing here imports kopf."""

__all__: list[str] = []
