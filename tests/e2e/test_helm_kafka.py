"""The chart's Kafka on the test bed: a real KRaft quorum of three nodes, from ``helm install``.

The node agent runs the rendered StatefulSet pods as three broker JVMs (the ``apache/kafka``
runtime), each on its own loopback pod IP, their claims bound by the test bed's local-path
provisioner. Checked: the three form one quorum with the Secret's cluster id; the topic Job
made the alert and metrics topics with replication 3 and ``min.insync.replicas`` 2; deleting a
broker while a producer (acks=all) writes loses no acknowledged message; ``helm upgrade``
with a changed value rolls the brokers and keeps the cluster id and the data.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import helm_release
from tests.testbed.k8s import cluster

pytestmark = [pytest.mark.testbed, pytest.mark.kafka, pytest.mark.slow]

RELEASE = "sl"
STS = f"{RELEASE}-shutterline-kafka"
SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=kafka"


@pytest.fixture(scope="module")
def release(
    k8s_cluster: cluster.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[helm_release.Release]:
    """The chart installed with its Kafka only, in a fresh restricted namespace."""
    namespace = helm_release.create_namespace(k8s_cluster, "kafka")
    workers = helm_release.create_namespace(k8s_cluster, "workers")
    workdir = tmp_path_factory.mktemp("helm-kafka")
    installed = helm_release.Release(k8s_cluster, RELEASE, namespace, workdir, workers)
    installed.install(installed.values())
    yield installed
    installed.helm("uninstall", RELEASE, "--wait", "--timeout", "2m")
    for name in (namespace, workers):
        k8s_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def bootstrap(release: helm_release.Release) -> str:
    """The chart's bootstrap address (the headless Service's name, resolved by the agent)."""
    return f"{STS}-headless.{release.namespace}.svc.cluster.local:9092"


def cluster_id(release: helm_release.Release) -> str:
    secret = release.get("secret", f"{STS}-cluster-id")
    return base64.b64decode(secret["data"]["cluster-id"]).decode()


def quorum(release: helm_release.Release) -> dict[str, str]:
    """``kafka-metadata-quorum.sh describe --status`` as a dict."""
    out = helm_release.kafka_tool(
        release.workdir,
        "kafka-metadata-quorum.sh",
        "--bootstrap-server",
        bootstrap(release),
        "describe",
        "--status",
    )
    return dict(re.findall(r"^(\w+):\s+(.*)$", out, re.MULTILINE))


def broker_cmdline(pod: dict[str, Any]) -> str:
    """The command line of the process the node agent started for the pod's container."""
    status = pod["status"]["containerStatuses"][0]
    pid = int(status["containerID"].removeprefix("testbed://"))
    # The container's first process is bash, which exec'd the broker's JVM.
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_three_brokers_form_one_kraft_quorum(release: helm_release.Release) -> None:
    pods = release.pods(SELECTOR)
    assert sorted(p["metadata"]["name"] for p in pods) == [f"{STS}-{i}" for i in range(3)]
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert len({p["status"]["podIP"] for p in pods}) == 3
    for pod in pods:
        line = broker_cmdline(pod)
        assert "kafka.Kafka" in line and "server.properties" in line, line
    status = quorum(release)
    assert status["ClusterId"] == cluster_id(release)
    voters = re.findall(r'"id": (\d+)', status["CurrentVoters"])
    assert sorted(voters) == ["0", "1", "2"]
    assert status["LeaderId"] in voters


def test_topic_job_created_replicated_topics(release: helm_release.Release) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap(release)})
    topics = admin.list_topics(timeout=30).topics
    for name, partitions, retention in (
        ("alerts", 3, "604800000"),
        ("shutterline-metrics", 1, "2592000000"),
    ):
        assert len(topics[name].partitions) == partitions
        assert all(len(p.replicas) == 3 for p in topics[name].partitions.values())
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        config = admin.describe_configs([resource])[resource].result(timeout=30)
        assert config["min.insync.replicas"].value == "2"
        assert config["retention.ms"].value == retention


def produce_through_deletion(
    release: helm_release.Release, topic: str, victim: str
) -> tuple[set[str], int]:
    """Produce keyed messages (acks=all) while ``victim`` is deleted and comes back.

    Returns the keys the brokers acknowledged and how many were sent.
    """
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap(release),
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": 120000,
            "linger.ms": 5,
        }
    )
    acked: set[str] = set()
    lock = threading.Lock()

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            with lock:
                acked.add(message.key().decode())

    old_uid = release.get("pod", victim)["metadata"]["uid"]
    sent = 0

    def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            producer.produce(topic, key=f"k{sent:06d}", value=b"x" * 512, on_delivery=delivered)
            sent += 1
            producer.poll(0)
            time.sleep(0.005)

    send(400)
    release.bed.kubectl("delete", "pod", victim, "-n", release.namespace, "--wait=false")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        send(50)
        pod = release.pods(f"statefulset.kubernetes.io/pod-name={victim}")
        if (
            pod
            and pod[0]["metadata"]["uid"] != old_uid
            and pod[0]["status"].get("phase") == "Running"
        ):
            break
    else:
        pytest.fail(f"{victim} did not come back within 180 s")
    send(400)
    assert producer.flush(120) == 0, "messages still in flight after 120 s"
    return acked, sent


def consume_keys(release: helm_release.Release, topic: str, expected: int) -> set[str]:
    """Every key in ``topic``, read from the beginning until ``expected`` or a quiet spell."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(release),
            "group.id": f"check-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    keys: set[str] = set()
    quiet_until = time.monotonic() + 60
    try:
        while len(keys) < expected and time.monotonic() < quiet_until:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            keys.add(bytes(message.key() or b"").decode())
            quiet_until = time.monotonic() + 15
    finally:
        consumer.close()
    return keys


def test_deleting_a_broker_mid_stream_loses_no_acknowledged_message(
    release: helm_release.Release,
) -> None:
    acked, sent = produce_through_deletion(release, "alerts", f"{STS}-1")
    assert len(acked) == sent, f"{sent - len(acked)} of {sent} messages were not acknowledged"
    stored = consume_keys(release, "alerts", len(acked))
    assert acked <= stored, f"{len(acked - stored)} acknowledged messages lost"
    assert quorum(release)["CurrentVoters"].count('"id"') == 3


def test_upgrade_keeps_cluster_id_and_data(release: helm_release.Release) -> None:
    before_id = cluster_id(release)
    before_uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in release.pods(SELECTOR)}
    stored_before = consume_keys(release, "alerts", 10**9)
    assert stored_before, "the topic should hold the earlier test's messages"
    changed = helm_release.merge(
        release.values(),
        {
            "kafka": {
                "config": {"num.io.threads": 4},
                "topics": {"alerts": {"retentionMs": 86400000}},
            }
        },
    )
    release.upgrade(changed)
    pods = release.pods(SELECTOR)
    assert all(before_uids[p["metadata"]["name"]] != p["metadata"]["uid"] for p in pods), (
        "a changed broker setting rolls every broker"
    )
    assert cluster_id(release) == before_id
    assert quorum(release)["ClusterId"] == before_id
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap(release)})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "alerts")
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    assert config["retention.ms"].value == "86400000"
    keys = consume_keys(release, "alerts", 10**9)
    assert stored_before <= keys


RELAY_ALERTS = 1500


def relay_pod(name: str, bootstrap_address: str) -> dict[str, Any]:
    """A worker pod's alert-relay container (pipeline image, restricted) for detector 7."""
    env = {
        "SHUTTERLINE_REPO": "s3://unused/repo",
        "SHUTTERLINE_APDB": "postgresql://unused/apdb",
        "SHUTTERLINE_SPOOL": "/scratch/spool",
        "SHUTTERLINE_WORKDIR": "/scratch/work",
        "SHUTTERLINE_KAFKA_BOOTSTRAP": bootstrap_address,
        "SHUTTERLINE_ALERT_TOPIC": "alerts",
        "SHUTTERLINE_METRICS_TOPIC": "shutterline-metrics",
        "SHUTTERLINE_RELAY_GIVE_UP_S": "180",
        "SHUTTERLINE_VISIT_SPEC": json.dumps({"visitId": 100007, "instrument": "SimDECam"}),
        "SHUTTERLINE_DETECTORS": "3,7",
        "JOB_COMPLETION_INDEX": "1",
    }
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "shutterline-operator"},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "alert-relay",
                    "image": "ghcr.io/shutterline/shutterline-pipeline:0.1.0",
                    "args": ["relay"],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "securityContext": restricted,
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
        },
    }


def spool_alerts(spool: Path, first_half: threading.Event) -> None:
    """Play the pipeline: spool the packets in batches, then the metrics and done markers."""
    from shutterline.alerts import spool as alert_spool
    from shutterline.relay import markers
    from tests.unit.relay import packets

    writer = alert_spool.AlertSpool(spool, fsync=False)
    ids = packets.ids(RELAY_ALERTS)
    for start in range(0, RELAY_ALERTS, 100):
        writer.write_many(
            list(packets.payloads(ids[start : start + 100])), visit=100007, detector=7
        )
        if start >= RELAY_ALERTS // 2:
            first_half.set()
            time.sleep(1.0)  # the rest trickles in while a broker is down
    markers.write_metrics(spool, 100007, 7, {"dia_sources": RELAY_ALERTS})
    markers.write_done(spool, 100007, 7, "succeeded", RELAY_ALERTS)


def test_relay_pod_publishes_every_alert_through_a_broker_deletion(
    release: helm_release.Release,
) -> None:
    """The pipeline image's relay, run by the node agent in a restricted workers namespace,
    publishes a detector's alerts to the chart's Kafka while a broker is deleted."""
    from tests.unit.relay import packets

    bed, workers = release.bed, release.workers
    pod = relay_pod("visit-100007-1-relay", bootstrap(release))
    bed.kubectl("apply", "-n", workers, "-f", "-", stdin=json.dumps(pod))
    name = pod["metadata"]["name"]

    def phase(*phases: str) -> dict[str, Any] | None:
        out = bed.kubectl("get", "pod", name, "-n", workers, "-o", "json")
        current: dict[str, Any] = json.loads(out.stdout)
        return current if current.get("status", {}).get("phase") in phases else None

    created = helm_release.wait_for(lambda: phase("Running"), 60, "the relay pod to run")
    spool = bed.pod_dir(created) / "volumes" / "scratch" / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    half = threading.Event()
    writer = threading.Thread(target=spool_alerts, args=(spool, half), daemon=True)
    writer.start()
    assert half.wait(120)
    release.bed.kubectl("delete", "pod", f"{STS}-2", "-n", release.namespace, "--wait=false")
    writer.join(180)

    final = helm_release.wait_for(
        lambda: phase("Succeeded", "Failed"), 240, "the relay to drain the spool"
    )
    log = bed.container_log(final, "alert-relay")
    assert final["status"]["phase"] == "Succeeded", log[-3000:]
    status = json.loads((spool / "relay.status.json").read_text())
    assert status["state"] == "drained" and status["acked"] == RELAY_ALERTS, status
    assert not list(spool.glob("*.alert")), "every packet was deleted after its ack"
    expected = {str(i) for i in packets.ids(RELAY_ALERTS)}
    keys = consume_keys(release, "alerts", 10**9)
    assert expected <= keys, f"{len(expected - keys)} alerts missing from the chart's Kafka"
