"""The Shutterline operator: kopf handlers, the Job builder and the status folder.

Layers, top to bottom: handlers (kopf decorators, one core call each) → core (Job builder,
status folding: pure functions over plain dicts) → adapters (Kubernetes API calls). A lower
layer never imports a higher one. Nothing here imports the pipeline package's stages.
"""
