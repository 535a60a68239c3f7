"""The test bed: real components (Kubernetes control plane, node agent, Kafka, S3, PostgreSQL,
trace receiver) run as local processes on loopback, built or fetched once into
``~/.cache/shutterline/testbed/`` at pinned versions.
"""
