"""Session-scoped pytest fixtures for S3, PostgreSQL, Kafka, the schema registry and Jaeger.

Each fixture starts its component on free loopback ports the first time a test asks for it
(building or fetching the pinned binaries once into ``~/.cache/shutterline/testbed/``) and
stops it when the session ends. A component that fails to start raises
`tests.testbed.procs.ComponentError` naming it with the tail of its log. The contracts are in
the project's test-bed brief; each component module also offers ``start(state_dir)`` and
``handle.stop()`` for ``python -m tests.testbed up``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.testbed import kafka, otlp, postgres, registry, s3

__all__ = ["kafka_broker", "otlp_receiver", "postgres_server", "s3_server", "schema_registry"]

Handle = TypeVar("Handle")


def _start_live(
    request: pytest.FixtureRequest, start: Callable[[Path], Handle], state_dir: Path
) -> Handle:
    """Run ``start(state_dir)`` with pytest's capture off, so build progress shows live."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    live = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with live:
        return start(state_dir)


@pytest.fixture(scope="session")
def s3_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[s3.S3Server]:
    """A MinIO S3 server on a free port (see `tests.testbed.s3.S3Server`)."""
    server = _start_live(request, s3.start, tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[postgres.PostgresServer]:
    """A PostgreSQL cluster on a free port (see `tests.testbed.postgres.PostgresServer`)."""
    server = _start_live(request, postgres.start, tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[kafka.KafkaBroker]:
    """A KRaft Kafka broker on a free port (see `tests.testbed.kafka.KafkaBroker`)."""
    broker = _start_live(request, kafka.start, tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def schema_registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[registry.SchemaRegistry]:
    """Apicurio Registry, Confluent-compatible API at ``.url`` (see `tests.testbed.registry`)."""
    server = _start_live(request, registry.start, tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def otlp_receiver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[otlp.JaegerReceiver]:
    """Jaeger v2 with in-memory storage, receiving OTLP/HTTP (see `tests.testbed.otlp`)."""
    receiver = _start_live(request, otlp.start, tmp_path_factory.mktemp("otlp"))
    try:
        yield receiver
    finally:
        receiver.stop()
