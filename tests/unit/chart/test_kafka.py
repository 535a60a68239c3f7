"""The Kafka StatefulSet, its Services, PDB, cluster-id Secret and topic Job as rendered."""

from __future__ import annotations

import base64

from tests.unit.chart import render

DOMAIN = "sl-shutterline-kafka-headless.shutterline.svc.cluster.local"


def test_statefulset_is_a_parallel_kraft_quorum_with_claims() -> None:
    docs = render.template()
    sts = render.one(docs, "StatefulSet", "kafka")
    spec = sts["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == "sl-shutterline-kafka-headless"
    claim = spec["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Ti"
    assert "storageClassName" not in claim["spec"]  # the cluster's default
    container = spec["template"]["spec"]["containers"][0]
    script = container["args"][0]
    assert 'node_id="${POD_NAME##*-}"' in script and "node.id=${node_id}" in script
    assert "kafka-storage.sh format" in script and "--ignore-formatted" in script
    assert script.rstrip().endswith('exec /opt/kafka/bin/kafka-server-start.sh "$props"')
    env = {e["name"]: e for e in container["env"]}
    assert env["CLUSTER_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "sl-shutterline-kafka-cluster-id",
        "key": "cluster-id",
    }
    shared = render.one(docs, "ConfigMap", "kafka")["data"]["server.properties"]
    voters = ",".join(f"{i}@sl-shutterline-kafka-{i}.{DOMAIN}:9093" for i in range(3))
    assert f"controller.quorum.voters={voters}" in shared
    assert "min.insync.replicas=2" in shared and "default.replication.factor=3" in shared


def test_storage_class_size_and_replicas_follow_values() -> None:
    docs = render.template(
        **{
            "kafka.storage.storageClass": "cinder-ssd",
            "kafka.storage.size": "500Gi",
            "kafka.replicas": "5",
        }
    )
    spec = render.one(docs, "StatefulSet", "kafka")["spec"]
    assert spec["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "cinder-ssd"
    assert spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "500Gi"
    shared = render.one(docs, "ConfigMap", "kafka")["data"]["server.properties"]
    assert shared.count(f".{DOMAIN}:9093") == 5 and "4@sl-shutterline-kafka-4." in shared


def test_brokers_spread_across_nodes() -> None:
    hard = render.one(render.template(), "StatefulSet", "kafka")
    anti = hard["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "kafka"
    soft = render.one(
        render.template(**{"kafka.antiAffinity.mode": "soft"}), "StatefulSet", "kafka"
    )
    assert (
        "preferredDuringSchedulingIgnoredDuringExecution"
        in (soft["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"])
    )


def test_headless_service_publishes_not_ready_addresses() -> None:
    service = render.one(render.template(), "Service", "kafka-headless")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in service["spec"]["ports"]} == {9092, 9093}


def test_pdb_allows_one_broker_down() -> None:
    pdb = render.one(render.template(), "PodDisruptionBudget", "kafka")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "kafka"


def test_cluster_id_is_a_kafka_uuid_kept_on_uninstall() -> None:
    secret = render.one(render.template(), "Secret", "kafka-cluster-id")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    cluster_id = base64.b64decode(secret["data"]["cluster-id"]).decode()
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    pinned = render.template("all-on")
    value = render.one(pinned, "Secret", "kafka-cluster-id")["data"]["cluster-id"]
    assert base64.b64decode(value).decode() == "MkU3OEVBNTcwNTJENDM2Qg"


def test_topic_job_creates_both_topics_after_install_and_upgrade() -> None:
    job = render.one(render.template(), "Job", "kafka-topics")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "--replication-factor 3" in script
    assert "--config min.insync.replicas=2" in script
    assert 'topic "alerts" 12 604800000' in script
    assert 'topic "shutterline-metrics" 3 2592000000' in script
    assert f'bootstrap="{DOMAIN}:9092"' in script
