"""Session-scoped pytest fixtures for S3, PostgreSQL, Kafka and the trace receiver."""
