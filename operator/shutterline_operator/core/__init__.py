"""Pure core: names, validation, the Job builder, status folding, queue order; plain dicts in
and out, no kopf, no Kubernetes client, no I/O, no clock (``now`` is always an argument)."""

__all__: list[str] = []
