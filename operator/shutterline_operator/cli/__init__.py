"""Subcommands this distribution adds to ``shutterline`` (``shutterline.commands`` entry points).

Each module has ``register(subparsers)``; ``shutterline.cli.main`` loads them, so the pipeline
package never imports the operator or the Kubernetes client.
"""
