"""The Job POST from kopf's loop (`kube_async`, `creator.AsyncCreator`) against the thread
pool's step it replaced (`Reconciler.ensure` on `creator.Creator`): the same Jobs, the same
rejections and adoptions, and the answers of the API server read the same way."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import time
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client

from shutterline_operator.adapters import kube, kube_async, tracing
from shutterline_operator.engine import creator, reconcile
from tests.unit.operator import objects


class _Recorder(kube.Api):
    """An API that answers creates as the API server would (metadata only when asked) and
    records every write."""

    def __init__(self) -> None:
        super().__init__(client.ApiClient())
        self.created: list[tuple[str, dict[str, Any]]] = []
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.held: dict[tuple[str, str], dict[str, Any]] = {}

    def create(self, kind: str, body: dict[str, Any], **options: Any) -> dict[str, Any] | None:
        key = (kind, body["metadata"]["name"])
        if kind != "events" and key in self.held:
            return None
        stored = copy.deepcopy(body)
        stored["metadata"].update(uid=f"uid-of-{key[1]}", resourceVersion="7")
        self.held[key] = stored
        self.created.append((kind, copy.deepcopy(body)))
        return {"metadata": stored["metadata"]} if options.get("metadata_only") else stored

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.held.get((kind, name)))

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None) -> Any:
        return iter(())

    def patch(
        self, kind: str, namespace: str, name: str, patch: dict[str, Any], status: bool = False
    ) -> None:
        self.patches.append((kind, name, patch))

    def event(
        self, obj: dict[str, Any], kind: str, reason: str, message: str, warning: bool
    ) -> None:
        self.patches.append(("event", obj["metadata"]["name"], {"reason": reason}))


class _AsyncRecorder(kube_async.AsyncApi):
    """`kube_async.AsyncApi`'s create on top of a `_Recorder`."""

    def __init__(self, api: _Recorder) -> None:
        super().__init__(client.Configuration())
        self.api = api

    async def create(self, kind: str, body: dict[str, Any], **options: Any) -> Any:
        await asyncio.sleep(0)
        return self.api.create(kind, body, **options)

    async def close(self) -> None:
        pass


def _reconciler(monkeypatch: pytest.MonkeyPatch) -> tuple[reconcile.Reconciler, _Recorder]:
    monkeypatch.setattr(reconcile, "_utcnow", lambda: objects.NOW)
    api = _Recorder()
    rec = reconcile.Reconciler(api, tracing.RootSpans())
    config = objects.config()
    config["metadata"].update(uid="uid-simdecam", resourceVersion="3")
    rec.cache.put_config(config)
    return rec, api


def _visits() -> list[dict[str, Any]]:
    good = [objects.visit(f"visit-{i}", visitId=100 + i, deadlineSeconds=86400) for i in range(6)]
    unknown = objects.visit("visit-unknown", instrument="NoSuchCam", deadlineSeconds=86400)
    duplicate = objects.visit("visit-dup", visitId=100, deadlineSeconds=86400)
    duplicate["metadata"]["creationTimestamp"] = "2026-03-01T03:12:31Z"
    return [*good, unknown, duplicate]


def _threads(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    rec, api = _reconciler(monkeypatch)
    maker = creator.Creator(rec, 4)
    for visit in _visits():
        rec.cache.put_visit(visit)
    maker.offer_all()
    while maker.busy:
        time.sleep(0.01)
    maker.stop()
    return api


def _async(monkeypatch: pytest.MonkeyPatch, held_job: bool = False) -> _Recorder:
    rec, api = _reconciler(monkeypatch)
    if held_job:  # an earlier run made visit-0's Job; this process has not seen it
        config = rec.cache.config_for("prompt", "SimDECam")
        assert config is not None
        rec._env_map(config)  # its ConfigMap exists already too
        job = rec.prepare(objects.visit("visit-0", visitId=100, deadlineSeconds=86400))
        assert job is not None
        job["metadata"]["ownerReferences"] = [{"kind": "Visit", "uid": "uid-visit-0"}]
        api.held[("jobs", job["metadata"]["name"])] = job

    async def run() -> None:
        maker = creator.AsyncCreator(
            rec,
            _AsyncRecorder(api),
            asyncio.get_running_loop(),
            3,
        )
        for visit in _visits():
            rec.cache.put_visit(visit)
            maker.offer(_key(visit))
        while maker.creating() and maker.busy:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(maker.pool.shutdown, True)

    asyncio.run(run())
    return api


def _key(visit: dict[str, Any]) -> tuple[str, str]:
    return (visit["metadata"]["namespace"], visit["metadata"]["name"])


def _by_name(created: list[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], str]:
    return {
        (kind, body["metadata"]["name"]): json.dumps(body, sort_keys=True) for kind, body in created
    }


def test_async_creator_posts_the_jobs_and_rejections_of_the_thread_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference, fast = _threads(monkeypatch), _async(monkeypatch)
    jobs = [k for k in _by_name(reference.created) if k[0] == "jobs"]
    assert len(jobs) == 6  # the unknown instrument and the duplicate get none
    assert _by_name(fast.created) == _by_name(reference.created)
    rejected = sorted(name for kind, name, _ in reference.patches if kind == "event")
    assert rejected == ["visit-dup", "visit-unknown"]
    assert sorted(fast.patches, key=repr) == sorted(reference.patches, key=repr)


def test_a_job_that_exists_is_adopted_not_made_again(monkeypatch: pytest.MonkeyPatch) -> None:
    api = _async(monkeypatch, held_job=True)
    made = [body["metadata"]["name"] for kind, body in api.created if kind == "jobs"]
    assert len(made) == 5 and not any(name.endswith("visit-0") for name in made)


def _server(
    answers: list[tuple[int, dict[str, Any]]], seen: list[tuple[dict[str, str], Any]]
) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.json()))
        status, body = answers.pop(0)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/apis/batch/v1/namespaces/prompt/jobs", handle)
    return app


def test_async_api_reads_answers_as_the_sync_client() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        unused_tcp_port = probe.getsockname()[1]
    meta = {"metadata": {"name": "j", "uid": "u1"}}
    answers: list[tuple[int, dict[str, Any]]] = [
        (201, meta),
        (409, {"reason": "AlreadyExists"}),
        (503, {}),
        (422, {"m": "bad"}),
    ]
    seen: list[tuple[dict[str, str], Any]] = []
    configuration = client.Configuration(host=f"http://127.0.0.1:{unused_tcp_port}")
    configuration.api_key = {"BearerToken": "tok"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    body = {"metadata": {"name": "j", "namespace": "prompt"}, "spec": {"x": 1}}

    async def run() -> list[Any]:
        runner = web.AppRunner(_server(answers, seen))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
        api = kube_async.AsyncApi(configuration)
        results: list[Any] = []
        try:
            for _ in range(4):
                try:
                    results.append(await api.create("jobs", body, metadata_only=True))
                except kube.ApiError as error:
                    results.append((error.status, error.transient))
        finally:
            await api.close()
            await runner.cleanup()
        return results

    assert asyncio.run(run()) == [meta, None, (503, True), (422, False)]
    headers, sent = seen[0]
    assert headers["Authorization"] == "Bearer tok"
    assert headers["Accept"] == kube.METADATA_ONLY
    assert sent == body
