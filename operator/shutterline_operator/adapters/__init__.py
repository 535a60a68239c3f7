"""Edges that carry out the engine's decisions: API calls, Events, metrics, health, root spans."""

__all__: list[str] = []
