"""The engine: the in-memory cache of Visits, Jobs, pods and PromptConfigs, the reconcile
steps and the one status loop; it calls core for every decision and adapters for every
effect, and never imports kopf (the handlers feed it)."""

__all__: list[str] = []
