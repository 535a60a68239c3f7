"""The operator's API calls, as plain JSON dicts (the client's generated models are slow to
import and to build; only its configured HTTP session is used: TLS, certificates, tokens).

404 and 409 are answers, not errors: a getter returns None, a create that finds the object
already there returns False. Every other failure raises `ApiError` with ``transient`` set for
what a retry may cure (5xx, 429, connection errors).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

from kubernetes import client, config

from shutterline_operator.adapters import metrics
from shutterline_operator.core import names

__all__ = ["MERGE_PATCH", "METADATA_ONLY", "Api", "ApiError", "answer", "collection", "connect"]

MERGE_PATCH = "application/merge-patch+json"
#: Asks for a created object's metadata only (its uid, resourceVersion, creationTimestamp),
#: not the whole defaulted object with its managed fields.
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
_CUSTOM = f"/apis/{names.GROUP}/{names.VERSION}"
_PAGE = 500


class ApiError(Exception):
    """A failed API call; ``status`` is the HTTP status (0 without an answer)."""

    def __init__(self, operation: str, status: int, detail: str) -> None:
        super().__init__(f"{operation}: HTTP {status}: {detail[:500]}")
        self.status = status
        self.transient = status == 0 or status == 429 or status >= 500


def answer(operation: str, status: int, data: bytes) -> Any:
    """The decoded answer of a request, or None for 404; raises `ApiError` for the rest of
    the failures (the one reading of an answer, for this module and `kube_async`)."""
    if status == 404:
        return None
    if status >= 400:
        metrics.API_ERRORS.labels(operation, str(status)).inc()
        raise ApiError(operation, status, data.decode(errors="replace"))
    return json.loads(data or b"null")


def collection(kind: str, namespace: str | None) -> str:
    """The URL of a collection: ``visits``, ``promptconfigs``, ``jobs``, ``pods``, ``events``,
    ``configmaps``."""
    core = "/api/v1"
    prefix = {"jobs": "/apis/batch/v1", "pods": core, "events": core, "configmaps": core}.get(
        kind, _CUSTOM
    )
    return f"{prefix}/namespaces/{namespace}/{kind}" if namespace else f"{prefix}/{kind}"


def connect(connections: int = 32) -> client.ApiClient:
    """An API client from ``$KUBECONFIG`` (or ~/.kube/config), else the pod's service account.

    ``connections`` kept open: more than the threads that call at once (creators, status
    patches, admission), else each surplus call pays a new TLS handshake."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(os.environ.get("KUBECONFIG"), client_configuration=configuration)
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


class Api:
    """Requests on behalf of the operator; thread-safe (the client's pool is)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.client = api_client

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Any:
        """One request; the decoded answer, or None for 404. Raises `ApiError`."""
        started = time.perf_counter()
        headers = {"Content-Type": content_type, "Accept": accept}
        try:
            method, url, headers, body, _ = self.client.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.client.call_api(
                method, url, header_params=headers, body=body, _request_timeout=30
            )
            data = response.read()
        except Exception as error:  # connection refused, reset, timeout
            metrics.API_ERRORS.labels(operation, "0").inc()
            raise ApiError(operation, 0, str(error)) from error
        finally:
            metrics.API_SECONDS.labels(operation).observe(time.perf_counter() - started)
        return answer(operation, response.status, data)

    # --- reads ----------------------------------------------------------------------------
    def list(
        self, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every object of ``kind`` (paged), optionally with a label ``selector``."""
        token = None
        while True:
            query: list[tuple[str, Any]] = [("limit", _PAGE)]
            if selector:
                query.append(("labelSelector", selector))
            if token:
                query.append(("continue", token))
            page = self.request(f"list {kind}", "GET", collection(kind, namespace), query=query)
            yield from (page or {}).get("items") or []
            token = ((page or {}).get("metadata") or {}).get("continue")
            if not token:
                return

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, None if it does not exist."""
        result = self.request(f"get {kind}", "GET", f"{collection(kind, namespace)}/{name}")
        return None if result is None else dict(result)

    # --- writes ---------------------------------------------------------------------------
    def create(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        skip_validation: bool = False,
        metadata_only: bool = False,
    ) -> dict[str, Any] | None:
        """Create ``body``; the created object, or None when one of that name exists (409).

        ``skip_validation``: no server-side field validation (for bodies built by code whose
        shape the unit tests check against the API's schema, the strict decoding of every
        field is work the API server can skip). ``metadata_only``: the answer holds
        ``metadata`` only (`METADATA_ONLY`)."""
        path = collection(kind, body["metadata"]["namespace"])
        query = [("fieldValidation", "Ignore")] if skip_validation else None
        accept = METADATA_ONLY if metadata_only else "application/json"
        try:
            return dict(self.request(f"create {kind}", "POST", path, body, query, accept=accept))
        except ApiError as error:
            if error.status == 409:
                return None
            raise

    def patch(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any], status: bool = False
    ) -> dict[str, Any] | None:
        """Merge-patch an object (or its status subresource); None if it is gone."""
        path = f"{collection(kind, namespace)}/{name}" + ("/status" if status else "")
        operation = f"patch {kind}" + (" status" if status else "")
        return self.request(operation, "PATCH", path, patch, content_type=MERGE_PATCH)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete with background propagation (children follow); a missing object is fine."""
        body = {"propagationPolicy": "Background"}
        self.request(f"delete {kind}", "DELETE", f"{collection(kind, namespace)}/{name}", body)

    def event(
        self, obj: dict[str, Any], kind: str, reason: str, message: str, warning: bool
    ) -> None:
        """Post a core/v1 Event about ``obj`` (a Visit); failures only count in the metrics."""
        meta = obj["metadata"]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:12]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", f"{names.GROUP}/{names.VERSION}"),
                "kind": kind,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": names.MANAGED_BY},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        # An Event is a courtesy: the status already says it.
        with contextlib.suppress(ApiError):
            self.create("events", body)
