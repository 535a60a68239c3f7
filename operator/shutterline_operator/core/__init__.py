"""Pure functions over plain dicts (Job, status, queue, validation): no kopf, client, I/O, clock."""

__all__: list[str] = []
