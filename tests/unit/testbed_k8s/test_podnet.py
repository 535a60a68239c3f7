"""Pod addresses and host names: loopback only, sticky per pod name, cleaned up after."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.testbed.k8s import podnet
from tests.unit.testbed_k8s.fakes import make_pod

HOSTS = "127.0.0.1 localhost\n::1 ip6-localhost\n"


def kafka_pod(name: str, uid: str | None = None) -> dict:
    pod = make_pod({"hostname": name, "subdomain": "kafka-headless"}, name=name)
    pod["metadata"]["uid"] = uid or f"uid-{name}"
    return pod


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    return path


def test_each_pod_gets_its_own_loopback_address_and_keeps_it_by_name(hosts: Path) -> None:
    network = podnet.PodNetwork("n0", hosts, seed=1)
    first = [network.address(kafka_pod(f"kafka-{i}")) for i in range(50)]
    assert len(set(first)) == 50
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8") for ip in first)
    assert "127.0.0.1" not in first
    # A StatefulSet pod deleted and made again keeps its address.
    assert network.address(kafka_pod("kafka-3", uid="new-uid")) == first[3]


def test_pod_names_follow_hostname_and_subdomain() -> None:
    assert podnet.pod_names(kafka_pod("kafka-0")) == [
        "kafka-0.kafka-headless.ns.svc.cluster.local",
        "kafka-0.kafka-headless.ns.svc",
        "kafka-headless.ns.svc.cluster.local",
    ]
    assert podnet.pod_names(make_pod({})) == []


def test_publish_and_withdraw_touch_only_the_agents_own_lines(hosts: Path) -> None:
    network = podnet.PodNetwork("n0", hosts, seed=2)
    pods = [kafka_pod(f"kafka-{i}") for i in range(2)]
    for pod in pods:
        network.publish(pod, network.address(pod))
    text = hosts.read_text()
    assert text.startswith(HOSTS)
    assert text.count(podnet.TAG) == 2
    assert f"{network.address(pods[1])} kafka-1.kafka-headless.ns.svc.cluster.local" in text
    network.withdraw(pods[0])
    assert "kafka-0." not in hosts.read_text() and "kafka-1." in hosts.read_text()
    network.close()
    assert hosts.read_text() == HOSTS


def test_lines_of_agents_that_died_are_dropped_and_live_ones_kept(hosts: Path) -> None:
    dead = f"127.20.0.1 old.x.ns.svc.cluster.local {podnet.TAG} n9@999999999\n"
    live_owner = podnet.PodNetwork("n1", hosts)  # this process: alive
    live = f"127.20.0.2 live.x.ns.svc.cluster.local {podnet.TAG} {live_owner.owner}\n"
    hosts.write_text(HOSTS + dead + live)
    network = podnet.PodNetwork("n0", hosts, seed=3)
    network.publish(kafka_pod("kafka-0"), "127.30.0.5")
    text = hosts.read_text()
    assert "old.x" not in text and "live.x" in text and "127.30.0.5 kafka-0." in text


def test_only_loopback_addresses_are_written(hosts: Path) -> None:
    network = podnet.PodNetwork("n0", hosts)
    with pytest.raises(ValueError, match="non-loopback"):
        network.publish(kafka_pod("kafka-0"), "10.0.0.7")
    assert hosts.read_text() == HOSTS
