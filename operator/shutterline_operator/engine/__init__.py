"""The cache, the reconcile steps and the one status loop; decides via core, acts via adapters."""

__all__: list[str] = []
