"""The Shutterline operator: Visits into Indexed Jobs (`python -m shutterline_operator`).

Layers, top to bottom, checked by import-linter: ``handlers`` (kopf decorators, one engine
call each) → ``engine`` (cache, reconcile steps, the status loop) → ``adapters`` (API calls,
metrics, root spans) → ``core`` (pure functions over plain dicts). A lower layer never
imports a higher one; importing this package imports none of them (nor kopf).
"""

__all__: list[str] = []
