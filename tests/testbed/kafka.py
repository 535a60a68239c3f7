"""An Apache Kafka 4.x broker from Maven Central, KRaft combined broker+controller mode.

The broker's jars are fetched once with ``mvn dependency:copy-dependencies`` from a generated
pom into ``~/.cache/shutterline/testbed/kafka/<version>/libs``. ``start(state_dir)`` formats
fresh storage with Kafka's ``StorageTool``, runs ``kafka.Kafka`` on free loopback ports and
returns a `KafkaBroker` whose ``stop()`` ends it.
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import builds, procs

__all__ = ["KAFKA_VERSION", "KafkaBroker", "ensure_fetched", "start"]

KAFKA_VERSION = "4.1.1"
# Kafka pins slf4j 1.7 without a binding; the release tarball ships log4j2 behind slf4j 2,
# so the pom adds the same pair to get the broker's log at all.
_SLF4J_VERSION = "2.0.17"
_LOG4J_VERSION = "2.24.3"
_HEAP = "-Xmx512m"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.shutterline</groupId>
  <artifactId>kafka-testbed</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = out
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.kafka.name = org.apache.kafka
logger.kafka.level = warn
"""


def ensure_fetched() -> Path:
    """The folder of the broker's runtime jars, fetched from Maven Central on first use."""
    home = procs.cache_dir("kafka", KAFKA_VERSION)
    libs = home / "libs"
    with builds.locked(home):
        if builds.built_once(home) and any(libs.glob("kafka_2.13-*.jar")):
            return libs
        started = time.monotonic()
        builds.say(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central (first run only)")
        pom = _POM.format(kafka=KAFKA_VERSION, slf4j=_SLF4J_VERSION, log4j=_LOG4J_VERSION)
        (home / "pom.xml").write_text(pom)
        argv = ["mvn", "-B", "-f", str(home / "pom.xml"), "dependency:copy-dependencies"]
        argv += ["-DincludeScope=runtime", f"-DoutputDirectory={libs}"]
        argv += [f"-Dmaven.repo.local={home / 'm2'}"]
        builds.run_with_progress("kafka", argv, home / "fetch.log", "mvn copy-dependencies")
        (home / "log4j2.properties").write_text(_LOG4J2)
        (home / ".complete").write_text(f"fetched in {time.monotonic() - started:.0f} s\n")
        builds.say(f"kafka jars fetched in {time.monotonic() - started:.0f} s")
        return libs


@dataclass
class KafkaBroker:
    """A running single-node KRaft cluster."""

    bootstrap: str
    process: procs.ManagedProcess

    def env(self) -> dict[str, str]:
        """Environment variables naming this broker (for the test bed's env file)."""
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}

    def stop(self) -> None:
        """Stop the broker (SIGTERM lets it shut down cleanly, then SIGKILL)."""
        self.process.stop(timeout=20)

    def start(self, timeout: float = 90.0) -> None:
        """Start a stopped broker again: same ports, same storage (topics and offsets kept)."""
        if self.process.proc is not None and self.process.proc.poll() is None:
            return
        process = procs.ManagedProcess("kafka", self.process.argv, self.process.log)
        self.process = process.start()
        ready = lambda: _answers(self.bootstrap)  # noqa: E731
        procs.wait_process_ready(self.process, ready, timeout, "kafka (broker, restarted)")


def _properties(state_dir: Path, port: int, controller: int) -> Path:
    text = f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={state_dir / "data"}
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
"""
    path = state_dir / "server.properties"
    path.write_text(text)
    return path


def _java(libs: Path, main: str, *args: str) -> list[str]:
    log4j = libs.parent / "log4j2.properties"
    return [
        "java",
        _HEAP,
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def _format(libs: Path, props: Path, log: Path) -> None:
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    # "=": an id may begin with "-" (1 in 64), which the tool would take for an option.
    argv = _java(
        libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)
    )
    result = subprocess.run(argv, capture_output=True, text=True)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise procs.ComponentError(
            f"kafka: storage format failed (exit {result.returncode})\n"
            f"--- tail of {log} ---\n{procs.tail(log)}"
        )


def _answers(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    metadata = admin.list_topics(timeout=2)
    return len(metadata.brokers) == 1


def start(state_dir: Path, timeout: float = 90.0) -> KafkaBroker:
    """Fetch the jars if needed, format storage and start the broker on free ports.

    Raises `procs.ComponentError` naming ``kafka`` with its log tail on failure.
    """
    libs = ensure_fetched()
    state_dir.mkdir(parents=True, exist_ok=True)
    port, controller = procs.free_port(), procs.free_port()
    props = _properties(state_dir, port, controller)
    started = time.monotonic()
    _format(libs, props, state_dir / "format.log")
    argv = _java(libs, "kafka.Kafka", str(props))
    process = procs.ManagedProcess("kafka", argv, state_dir / "kafka.log").start()
    bootstrap = f"127.0.0.1:{port}"
    procs.wait_process_ready(process, lambda: _answers(bootstrap), timeout, "kafka (broker)")
    builds.say(f"kafka ready on {bootstrap} in {time.monotonic() - started:.1f} s")
    return KafkaBroker(bootstrap, process)
