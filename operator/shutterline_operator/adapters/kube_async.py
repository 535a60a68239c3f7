"""The Job POST from the asyncio loop kopf runs on, over aiohttp (kopf's own transport).

In a burst of new Visits, 16 creator threads each building a request with the Kubernetes
client and reading its answer share the GIL with kopf's loop, which reads the watch that
brings the next Visits; here the POSTs are coroutines of that one loop, and the threads are
left for the rare steps (a rejection, a 409). Credentials come from the same
`client.Configuration` as `kube.connect` (CA, client certificate, bearer token, refreshed by
the configuration's own hook); answers are read by `kube.answer`, as in `kube.Api`.
"""

from __future__ import annotations

import json
import ssl
import time
from typing import Any

import aiohttp
from kubernetes import client

from shutterline_operator.adapters import kube, metrics

__all__ = ["AsyncApi"]


def _ssl_context(configuration: client.Configuration) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class AsyncApi:
    """Creates objects from coroutines; the session is opened in the loop of the first call."""

    def __init__(self, configuration: client.Configuration, connections: int = 32) -> None:
        self.configuration, self.connections = configuration, connections
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            connector = aiohttp.TCPConnector(
                ssl=_ssl_context(self.configuration), limit=self.connections
            )
            timeout = aiohttp.ClientTimeout(total=30)
            self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self.session

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": accept}
        token = self.configuration.auth_settings().get("BearerToken")
        if token and token.get("value"):
            headers["Authorization"] = str(token["value"])
        return headers

    async def create(
        self, kind: str, body: dict[str, Any], *, metadata_only: bool = False
    ) -> dict[str, Any] | None:
        """As `kube.Api.create`: the created object (its metadata only with
        ``metadata_only``), or None when one of that name exists (409)."""
        operation = f"create {kind}"
        url = self.configuration.host + kube.collection(kind, body["metadata"]["namespace"])
        accept = kube.METADATA_ONLY if metadata_only else "application/json"
        started = time.perf_counter()
        try:
            async with self._session().post(
                url, data=json.dumps(body).encode(), headers=self._headers(accept)
            ) as response:
                status, data = response.status, await response.read()
        except Exception as error:  # connection refused, reset, timeout
            metrics.API_ERRORS.labels(operation, "0").inc()
            raise kube.ApiError(operation, 0, str(error)) from error
        finally:
            metrics.API_SECONDS.labels(operation).observe(time.perf_counter() - started)
        try:
            return dict(kube.answer(operation, status, data))
        except kube.ApiError as error:
            if error.status == 409:
                return None
            raise

    async def close(self) -> None:
        """Close the session and its connections."""
        if self.session is not None:
            await self.session.close()
            self.session = None
