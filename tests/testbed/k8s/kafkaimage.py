"""The ``apache/kafka`` image for the node agent, built from the test bed's cached Kafka jars.

There is no image to unpack, so each container gets a small tree laid out as the official
image lays out its files, under ``<container dir>/rootfs``:

- ``/opt/kafka/bin/*.sh``: the scripts the image ships (``kafka-server-start.sh``,
  ``kafka-storage.sh``, ``kafka-topics.sh``, ``kafka-configs.sh``,
  ``kafka-metadata-quorum.sh``, ...), each running its Kafka main class on the cached jars
  (`tests.testbed.kafka`) plus ``kafka-tools`` (fetched once beside them), honouring
  ``KAFKA_HEAP_OPTS``, ``KAFKA_JVM_PERFORMANCE_OPTS``, ``KAFKA_OPTS`` and ``KAFKA_LOG4J_OPTS``
  as ``kafka-run-class.sh`` does;
- ``/opt/kafka/config`` (log4j2 configurations), ``/etc/kafka/docker`` (the image's defaults),
  ``/mnt/shared/config`` and ``/var/lib/kafka/data``: writable, per container;
- ``/etc/kafka/docker/run``: the image's default command. As in the official image it exports
  ``K=V`` arguments, fills in the single-node defaults when ``KAFKA_PROCESS_ROLES`` is unset,
  turns every ``KAFKA_*`` variable into ``server.properties`` and formats the storage with
  ``CLUSTER_ID`` (Kafka's own ``kafka.docker.KafkaDockerWrapper setup``), then runs the broker.

The agent rewrites these paths in a container's command, args and env (like volume mounts),
so ``/opt/kafka/bin/kafka-topics.sh`` in a pod spec runs the host's copy.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.testbed import builds, kafka, procs

__all__ = ["IMAGE_PATHS", "ensure_tools", "files"]

IMAGE_PATHS = ("/opt/kafka", "/etc/kafka/docker", "/mnt/shared/config", "/var/lib/kafka/data")

# kafka-<script>.sh -> main class, as in the release's bin/ folder.
_SCRIPTS = {
    "kafka-server-start.sh": "kafka.Kafka",
    "kafka-storage.sh": "kafka.tools.StorageTool",
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-configs.sh": "kafka.admin.ConfigCommand",
    "kafka-metadata-quorum.sh": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-broker-api-versions.sh": "org.apache.kafka.tools.BrokerApiVersionsCommand",
    "kafka-get-offsets.sh": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-console-producer.sh": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer.sh": "org.apache.kafka.tools.consumer.ConsoleConsumer",
}
_SERVER_HEAP = "-Xmx1G -Xms1G"
_TOOL_HEAP = "-Xmx256M"
# Lighter than Kafka's G1 defaults: many JVMs share two cores here.
_JVM = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto"

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      target: {target}
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: {level}
      AppenderRef:
        - ref: STDOUT
"""

# The official image's single-node defaults (docker/resources/common-scripts/configureDefaults).
_DEFAULTS = {
    "CLUSTER_ID": "5L6g3nShT-eMCtK--X86sw",
    "KAFKA_NODE_ID": "1",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "KAFKA_LISTENERS": "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
    "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://localhost:9092",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_LOG_DIRS": "/tmp/kraft-combined-logs",
}


def ensure_tools() -> Path:
    """The ``kafka-tools`` jar (TopicCommand, MetadataQuorumCommand ...), fetched once."""
    home = procs.cache_dir("kafka-tools", kafka.KAFKA_VERSION)
    jar = home / f"kafka-tools-{kafka.KAFKA_VERSION}.jar"
    with builds.locked(home):
        if builds.built_once(home) and jar.exists():
            return jar
        started = time.monotonic()
        builds.say(
            f"fetching kafka-tools {kafka.KAFKA_VERSION} from Maven Central (first run only)"
        )
        argv = ["mvn", "-B", "dependency:copy"]
        argv += [f"-Dartifact=org.apache.kafka:kafka-tools:{kafka.KAFKA_VERSION}:jar"]
        argv += [f"-DoutputDirectory={home}", f"-Dmaven.repo.local={home / 'm2'}"]
        builds.run_with_progress("kafka-tools", argv, home / "fetch.log", "mvn dependency:copy")
        (home / ".complete").write_text(f"fetched in {time.monotonic() - started:.0f} s\n")
        return jar


def _run_class(root: Path, libs: Path, tools: Path) -> str:
    config = root / "opt/kafka/config"
    return f"""#!/bin/bash
# kafka-run-class.sh of the test bed's apache/kafka image: CLASS [ARGS...] on the cached jars.
if [ -z "$KAFKA_HEAP_OPTS" ]; then KAFKA_HEAP_OPTS="{_TOOL_HEAP}"; fi
if [ -z "$KAFKA_JVM_PERFORMANCE_OPTS" ]; then KAFKA_JVM_PERFORMANCE_OPTS="{_JVM}"; fi
if [ -z "$KAFKA_LOG4J_OPTS" ]; then
  KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile={config}/tools-log4j2.yaml"
fi
exec java $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS $KAFKA_LOG4J_OPTS $KAFKA_OPTS \\
  -cp "{libs}/*:{tools}" "$@"
"""


def _script(root: Path, main: str) -> str:
    bin_dir = root / "opt/kafka/bin"
    if main == "kafka.Kafka":
        config = root / "opt/kafka/config"
        return f"""#!/bin/bash
if [ -z "$KAFKA_HEAP_OPTS" ]; then export KAFKA_HEAP_OPTS="{_SERVER_HEAP}"; fi
if [ -z "$KAFKA_LOG4J_OPTS" ]; then
  export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile={config}/log4j2.yaml"
fi
exec {bin_dir}/kafka-run-class.sh kafka.Kafka "$@"
"""
    return f'#!/bin/bash\nexec {bin_dir}/kafka-run-class.sh {main} "$@"\n'


def _docker_run(root: Path) -> str:
    defaults = "\n".join(f'  ["{key}"]="{value}"' for key, value in _DEFAULTS.items())
    docker, bin_dir = root / "etc/kafka/docker", root / "opt/kafka/bin"
    return f"""#!/bin/bash
# /etc/kafka/docker/run of the official image: args K=V become env, KAFKA_* become
# server.properties (KafkaDockerWrapper), storage is formatted with CLUSTER_ID, broker starts.
set -e
for var in "$@"; do export "$var"; done
if [[ -z "${{KAFKA_PROCESS_ROLES-}}" ]]; then
  declare -A env_defaults=(
{defaults}
  )
  for key in "${{!env_defaults[@]}}"; do
    if [[ -z "${{!key:-}}" ]]; then export "$key"="${{env_defaults[$key]}}"; fi
  done
fi
if [[ -z "${{CLUSTER_ID-}}" ]]; then echo "CLUSTER_ID environment variable not set"; exit 1; fi
{bin_dir}/kafka-run-class.sh kafka.docker.KafkaDockerWrapper setup \\
  --default-configs-dir {docker} --mounted-configs-dir {root / "mnt/shared/config"} \\
  --final-configs-dir {root / "opt/kafka/config"}
exec {bin_dir}/kafka-server-start.sh {root / "opt/kafka/config/server.properties"}
"""


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def files(container_dir: Path) -> dict[str, Path]:
    """Lay out the image's tree for one container; map each image path to its host path."""
    libs, tools = kafka.ensure_fetched(), ensure_tools()
    root = container_dir / "rootfs"
    bin_dir = root / "opt/kafka/bin"
    _write(bin_dir / "kafka-run-class.sh", _run_class(root, libs, tools), 0o755)
    for name, main in _SCRIPTS.items():
        _write(bin_dir / name, _script(root, main), 0o755)
    for folder in ("opt/kafka/config", "etc/kafka/docker"):
        _write(root / folder / "log4j2.yaml", _LOG4J2.format(target="SYSTEM_OUT", level="INFO"))
        tools_log = _LOG4J2.format(target="SYSTEM_ERR", level="WARN")
        _write(root / folder / "tools-log4j2.yaml", tools_log)
    _write(root / "etc/kafka/docker/run", _docker_run(root), 0o755)
    for folder in ("mnt/shared/config", "var/lib/kafka/data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return {path: root / path.lstrip("/") for path in IMAGE_PATHS}
