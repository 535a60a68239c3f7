"""The node agent's API calls: the node authorizer's lag after a bind is waited out, not fatal."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.testbed.k8s import kubeapi

LAG = (
    b'{"kind":"Status","status":"Failure","message":"serviceaccounts \\"op\\" is forbidden: '
    b'User \\"system:node:n0\\" cannot create resource \\"serviceaccounts/token\\": '
    b'no relationship found between node \'n0\' and this object","reason":"Forbidden","code":403}'
)


class Answer:
    def __init__(self, status: int, data: bytes) -> None:
        self.status, self.reason, self.data = status, "Forbidden" if status == 403 else "OK", data

    def read(self) -> bytes:
        return self.data


class ScriptedClient:
    """Answers from a script (the failure injection): each call takes the next answer."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers, self.calls = answers, 0

    def param_serialize(self, method: str, resource_path: str, **_: Any) -> tuple[Any, ...]:
        return method, resource_path, {}, None, None

    def call_api(self, *_: Any, **__: Any) -> Answer:
        self.calls += 1
        return self.answers.pop(0)


def api_answering(answers: list[Answer]) -> tuple[kubeapi.NodeApi, ScriptedClient]:
    api = kubeapi.NodeApi.__new__(kubeapi.NodeApi)  # no kubeconfig: the client is scripted
    scripted = ScriptedClient(answers)
    api.client = scripted  # type: ignore[assignment]
    return api, scripted


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {}}


def test_token_request_refused_while_the_graph_lags_is_retried() -> None:
    api, scripted = api_answering(
        [Answer(403, LAG), Answer(403, LAG), Answer(201, b'{"status": {"token": "t0k"}}')]
    )
    assert api.service_account_token(POD, None, 3600) == "t0k"
    assert scripted.calls == 3


def test_other_refusals_fail_at_once() -> None:
    denied = b'{"kind":"Status","message":"forbidden: RBAC says no","code":403}'
    api, scripted = api_answering([Answer(403, denied), Answer(201, b"{}")])
    with pytest.raises(client.ApiException) as error:
        api.service_account_token(POD, None, 3600)
    assert error.value.status == 403 and "RBAC says no" in str(error.value.body)
    assert scripted.calls == 1


def test_a_lag_that_never_ends_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubeapi, "_GRAPH_LAG_S", 0.3)
    api, scripted = api_answering([Answer(403, LAG) for _ in range(50)])
    with pytest.raises(client.ApiException) as error:
        api.service_account_token(POD, None, 3600)
    assert "no relationship found" in str(error.value.body)
    assert 2 <= scripted.calls < 50
