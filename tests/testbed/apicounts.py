"""Count the requests the test bed's API server serves: of every client, and of one client.

``scrape(bed, prefix)`` reads the API server's ``/metrics``: ``apiserver_request_total`` by
(verb, resource[/subresource]) for every client, and
``apiserver_flowcontrol_dispatched_requests_total`` of the FlowSchemas whose names start with
``prefix``. The API server's metrics carry no user, but API Priority and Fairness classifies
each request by its FlowSchema, which can match a subject: ``flow_schemas(prefix, subject,
rules)`` makes one FlowSchema per (resource, verb) of an RBAC rule list for that subject (plus
a catch-all), so one client's requests are counted by resource and verb. They keep the
``workload-low`` priority level that any service account gets: counting, not favouring.
"""

from __future__ import annotations

import collections
import re
import ssl
import urllib.request
from typing import Any

from tests.testbed.k8s import cluster

__all__ = ["Counts", "delta", "flow_schemas", "scrape"]

Counts = dict[str, dict[tuple[str, ...], float]]
_SAMPLE = re.compile(r"^(\w+)\{(.*)\} ([0-9.eE+-]+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# Metric -> key in `scrape`'s answer: requests, and seconds spent serving them.
_PER_REQUEST = {
    "apiserver_request_total": "all",
    "apiserver_request_duration_seconds_sum": "seconds",
    "apiserver_request_duration_seconds_count": "timed",
}
# API Priority and Fairness's queue wait before a request runs: (schema suffix, "le" bound,
# "_sum" or "_count") -> seconds or requests.
_WAIT = "apiserver_flowcontrol_request_wait_duration_seconds"
_PRECEDENCE = 500  # before every default FlowSchema a service account would match


def _ssl_context(bed: cluster.Cluster) -> ssl.SSLContext:
    pki = bed.plane.pki
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    context.load_cert_chain(str(pki.admin.cert), str(pki.admin.key))
    return context


def scrape(bed: cluster.Cluster, prefix: str) -> Counts:
    """Request counters now, by (verb, resource): ``all`` (requests), ``seconds`` and
    ``timed`` (time the API server spent on them, and how many it timed; watches are timed
    for their whole life); ``client`` by (schema suffix,): the FlowSchemas' dispatches;
    ``terminated`` by (resource,): watchers the server closed as unresponsive (before closing
    one, it held back that resource's events from every watcher for a while); ``schema`` by
    (FlowSchema,): every dispatch, which tells clients apart (``exempt``: the admin's,
    ``kube-system-service-accounts``: the controllers'); ``waits`` by (schema suffix, ``le``
    bound or ``_sum`` or ``_count``): our FlowSchemas' queue waits in API Priority and
    Fairness, before the request ran (a histogram)."""
    url = f"{bed.server}/metrics"
    with urllib.request.urlopen(url, timeout=30, context=_ssl_context(bed)) as answer:
        text = answer.read().decode()
    counters: Counts = {name: collections.defaultdict(float) for name in _PER_REQUEST.values()}
    ours: dict[tuple[str, ...], float] = collections.defaultdict(float)
    closed: dict[tuple[str, ...], float] = collections.defaultdict(float)
    who: dict[tuple[str, ...], float] = collections.defaultdict(float)
    waits: dict[tuple[str, ...], float] = collections.defaultdict(float)
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match[2]))
        if match[1] in _PER_REQUEST:
            resource = labels.get("resource", "") or "(non-resource)"
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            key = (labels.get("verb", ""), resource)
            counters[_PER_REQUEST[match[1]]][key] += float(match[3])
        elif match[1] == "apiserver_flowcontrol_dispatched_requests_total":
            schema = labels.get("flow_schema", "")
            who[(schema,)] += float(match[3])
            if schema.startswith(prefix):
                ours[(schema.removeprefix(prefix),)] += float(match[3])
        elif match[1] == "apiserver_terminated_watchers_total":
            closed[(labels.get("resource", ""),)] += float(match[3])
        elif match[1].startswith(_WAIT) and labels.get("flow_schema", "").startswith(prefix):
            part = match[1].removeprefix(_WAIT)
            key = (labels["flow_schema"].removeprefix(prefix), labels.get("le", part))
            waits[key] += float(match[3])
    return {**counters, "client": ours, "terminated": closed, "schema": who, "waits": waits}


def delta(before: Counts, after: Counts, name: str) -> dict[tuple[str, ...], float]:
    """What counter ``name`` grew by between two `scrape` answers (only what grew)."""
    old = before[name]
    grown = {key: value - old.get(key, 0.0) for key, value in after[name].items()}
    return {key: value for key, value in grown.items() if value > 0}


def flow_schemas(
    prefix: str, subject: dict[str, Any], rules: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """FlowSchemas ``<prefix><resource>-<verb>`` for ``subject``, one per RBAC rule entry.

    A last one, ``<prefix>other``, takes the subject's requests no rule names (discovery,
    anything forbidden).
    """
    schemas: list[dict[str, Any]] = []
    for rule in rules:
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                match = {
                    "verbs": [verb],
                    "apiGroups": rule["apiGroups"],
                    "resources": [resource],
                    "namespaces": ["*"],
                    "clusterScope": True,
                }
                name = f"{prefix}{resource.replace('/', '-')}-{verb}"
                if any(s["metadata"]["name"] == name for s in schemas):  # another API group's
                    name = f"{prefix}{resource.replace('/', '-')}.{rule['apiGroups'][0]}-{verb}"
                schemas.append(_schema(name, _PRECEDENCE, subject, [match], []))
    every: dict[str, Any] = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
    every.update(namespaces=["*"], clusterScope=True)
    urls = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    schemas.append(_schema(f"{prefix}other", _PRECEDENCE + 1, subject, [every], urls))
    return schemas


def _schema(
    name: str,
    precedence: int,
    subject: dict[str, Any],
    resource_rules: list[dict[str, Any]],
    non_resource_rules: list[dict[str, Any]],
) -> dict[str, Any]:
    rule: dict[str, Any] = {"subjects": [subject], "resourceRules": resource_rules}
    if non_resource_rules:
        rule["nonResourceRules"] = non_resource_rules
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": "workload-low"},
            "matchingPrecedence": precedence,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [rule],
        },
    }
