"""The embedded default: a whole simulated night on one machine, no cluster, no servers.

Orchestration of existing commands (simulate, ingest, calibs, templates, run) plus the
report table and pictures; no science of its own.
"""
