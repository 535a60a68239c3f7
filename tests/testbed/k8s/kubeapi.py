"""The node agent's view of the API server: plain JSON dicts in and out, no client models.

Working on dicts keeps the agent's code close to the API's own field names (``restartPolicy``,
``containerStatuses``) and independent of the client's generated classes; requests go through
the ``kubernetes`` client's configured HTTP session (TLS, client certificate, token).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config

__all__ = ["MERGE_PATCH", "NodeApi", "now"]

MERGE_PATCH = "application/merge-patch+json"
_LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
# The node authorizer's refusal while its graph lacks a pod's edges, and how long it may lag.
_NO_RELATIONSHIP = b"no relationship found between node"
_GRAPH_LAG_S = 10.0


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeApi:
    """The calls a kubelet makes, as whoever the kubeconfig names (a node, or the admin).

    Only the client's HTTP layer is used: its generated API classes take seconds to import.
    """

    def __init__(self, kubeconfig: Path) -> None:
        self.client = config.new_client_from_config(config_file=str(kubeconfig))
        self.server = str(self.client.configuration.host)

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        """One request; returns the raw response (raises `client.ApiException` on >= 400)."""
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        method, url, headers, body, _ = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        pause, deadline = 0.05, time.monotonic() + _GRAPH_LAG_S
        while True:
            response = self.client.call_api(
                method, url, header_params=headers, body=body, _request_timeout=timeout
            )
            if response.status < 400:
                return response
            data = response.read()
            # The node authorizer learns a new pod's edges (service account, Secrets,
            # ConfigMaps) from its informers, a moment after the pod is bound: a kubelet
            # asking at once is refused, and retries, as its volume manager does.
            lagging = response.status == 403 and _NO_RELATIONSHIP in data
            if not lagging or time.monotonic() + pause > deadline:
                raise client.ApiException(
                    status=response.status,
                    reason=response.reason,
                    body=data.decode(errors="replace"),
                )
            time.sleep(pause)
            pause = min(2 * pause, 0.5)

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """One request; the decoded JSON answer."""
        return json.loads(self._send(method, path, body, **kwargs).read() or b"null")

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def healthy(self) -> bool:
        """Whether the API server answers ``/readyz`` with 200 (False if unreachable)."""
        try:
            return bool(self._send("GET", "/readyz", timeout=3).status == 200)
        except Exception:
            return False

    # --- nodes and leases -------------------------------------------------------------
    def get_node(self, name: str) -> dict[str, Any] | None:
        """The Node ``name`` or None if it does not exist."""
        try:
            return dict(self.request("GET", f"/api/v1/nodes/{name}"))
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def create_node(self, body: dict[str, Any]) -> None:
        """Register a Node."""
        self.request("POST", "/api/v1/nodes", body)

    def patch_node_status(self, name: str, status: dict[str, Any]) -> None:
        """Merge ``status`` into the Node's status (conditions are replaced as a whole)."""
        self.request(
            "PATCH", f"/api/v1/nodes/{name}/status", {"status": status}, content_type=MERGE_PATCH
        )

    def renew_lease(self, name: str, duration: int) -> None:
        """Create or renew the node's Lease in ``kube-node-lease`` (the cheap heartbeat)."""
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": renew}
        try:
            self.request("PATCH", f"{_LEASES}/{name}", {"spec": spec}, content_type=MERGE_PATCH)
        except client.ApiException as error:
            if error.status != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": spec,
            }
            self.request("POST", _LEASES, body)

    # --- pods ---------------------------------------------------------------------------
    def list_pods(self, node: str) -> tuple[list[dict[str, Any]], str]:
        """Pods bound to ``node`` and the list's resourceVersion."""
        data = self.request(
            "GET", "/api/v1/pods", query=[("fieldSelector", f"spec.nodeName={node}")]
        )
        return list(data["items"]), str(data["metadata"]["resourceVersion"])

    def watch_pods(
        self, node: str, resource_version: str, timeout: int = 60
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events ``(type, pod)`` on pods bound to ``node`` after ``resource_version``.

        Raises `client.ApiException` with status 410 when the version is too old to resume.
        """
        query = [
            ("fieldSelector", f"spec.nodeName={node}"),
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout)),
        ]
        response = self._send("GET", "/api/v1/pods", query=query, timeout=timeout + 10)
        buffer = b""
        try:
            for chunk in response.response.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            status = event["object"]
                            raise client.ApiException(
                                status=status.get("code"), reason=status.get("message")
                            )
                        yield str(event["type"]), dict(event["object"])
        finally:
            response.response.release_conn()

    def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge ``status`` into the pod's status; lists (container statuses) are replaced."""
        self.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": status},
            content_type=MERGE_PATCH,
        )

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """Finish a pod's deletion (grace period 0), only if it is still the same pod."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid},
        }
        try:
            self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body)
        except client.ApiException as error:
            if error.status not in (404, 409):
                raise

    # --- what pods reference ------------------------------------------------------------
    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        """Decoded data of ConfigMap or Secret ``namespace/name`` (None if it is absent)."""
        plural = "configmaps" if kind == "configmap" else "secrets"
        try:
            data = self.request("GET", f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        except client.ApiException as error:
            if error.status in (403, 404):
                return None
            raise
        values = dict(data.get("data") or {})
        if kind == "configmap":
            return values
        return {key: base64.b64decode(value).decode() for key, value in values.items()}

    def claim_path(self, namespace: str, claim: str) -> Path | None:
        """Host directory of the volume bound to PVC ``namespace/claim`` (None if unbound)."""
        try:
            pvc = self.request(
                "GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"
            )
            volume = (pvc.get("spec") or {}).get("volumeName")
            if not volume or (pvc.get("status") or {}).get("phase") != "Bound":
                return None
            spec = self.request("GET", f"/api/v1/persistentvolumes/{volume}")["spec"]
        except client.ApiException as error:
            if error.status in (403, 404):
                return None
            raise
        source = spec.get("local") or spec.get("hostPath") or {}
        return Path(source["path"]) if source.get("path") else None

    def service_account_token(
        self, pod: dict[str, Any], audience: str | None, expiration: int
    ) -> str:
        """A token of the pod's service account, bound to the pod (TokenRequest API)."""
        meta = pod["metadata"]
        spec: dict[str, Any] = {
            "expirationSeconds": expiration,
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        if audience:
            spec["audiences"] = [audience]
        account = pod["spec"].get("serviceAccountName") or "default"
        path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token"
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        return str(self.request("POST", path, body)["status"]["token"])
