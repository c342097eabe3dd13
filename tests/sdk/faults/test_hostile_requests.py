"""Hostile requests: the gateway's protocol errors, and the client refusing before sending."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from agentfm import AgentFMClient, AsyncAgentFMClient, InvalidRequestError
from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig
from tests.helpers import call

if TYPE_CHECKING:
    from collections.abc import Iterator

PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def mesh() -> Iterator[EmbeddedMesh]:
    worker = WorkerConfig("echo", "echo", CallableAgent(lambda p, c: "ok\n"), max_tasks=8)
    with EmbeddedMesh([worker], api_keys=[]) as m:
        yield m


def _cases(peer: str) -> list[tuple[bytes, int, str]]:
    p = peer.encode()
    return [
        (b"", 400, "Invalid JSON payload"),
        (b"not json", 400, "Invalid JSON payload"),
        (b"[1, 2]", 400, "Invalid JSON payload"),
        (b'"a string"', 400, "Invalid JSON payload"),
        (b"{", 400, "Invalid JSON payload"),
        (b'{"worker_id": 12, "prompt": "x"}', 400, "Invalid JSON payload"),
        (b'{"worker_id": "%s", "prompt": ["x"]}' % p, 400, "Invalid JSON payload"),
        (b'{"worker_id": "%s", "prompt": {"a": 1}}' % p, 400, "Invalid JSON payload"),
        (b'{"worker_id": "%s", "prompt": null}' % p, 400, "prompt is required"),
        (b"{}", 400, "worker_id is required"),
        (b'{"worker_id": "", "prompt": "x"}', 400, "worker_id is required"),
        (b'{"worker_id": "%s", "prompt": ""}' % p, 400, "prompt is required"),
        (b'{"worker_id": "not-a-peer-id", "prompt": "x"}', 404, "Worker not found or offline"),
        (b'{"worker_id": "%s\\u0000", "prompt": "x"}' % p, 404, "Worker not found or offline"),
        (
            b'{"worker_id": "%s", "prompt": "x" ' % p + b" " * (MIB + 10) + b"}",
            400,
            "Invalid JSON payload",
        ),
    ]


def _execute_only(peer: str) -> list[tuple[bytes, int, str]]:
    p = peer.encode()
    return [
        (b'{"worker_id": "%s", "prompt": "x", "task_id": 5}' % p, 400, "Invalid JSON payload"),
        (
            b'{"worker_id": "%s", "prompt": "x", "task_id": "../x"}' % p,
            400,
            "Invalid task_id format",
        ),
        (
            b'{"worker_id": "%s", "prompt": "x", "task_id": "a/b"}' % p,
            400,
            "Invalid task_id format",
        ),
        (
            b'{"worker_id": "%s", "prompt": "x", "task_id": "%s"}' % (p, b"a" * 129),
            400,
            "Invalid task_id format",
        ),
        (
            b'{"worker_id": "%s", "prompt": "x", "feedback_rating": "high"}' % p,
            400,
            "Invalid JSON payload",
        ),
    ]


@pytest.mark.parametrize("route", ["/api/execute", "/api/execute/async"])
def test_gateway_answers_hostile_bodies_with_the_protocol_errors(
    mesh: EmbeddedMesh, route: str
) -> None:
    peer = mesh.peer_id("echo")
    cases = _cases(peer) + (_execute_only(peer) if route == "/api/execute" else [])
    with httpx.Client(base_url=mesh.url, timeout=30) as http:
        for body, status, message in cases:
            resp = http.post(route, content=body, headers={"Content-Type": "application/json"})
            assert (resp.status_code, resp.text) == (status, message + "\n"), body[:80]
            assert resp.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("route", ["/api/execute", "/api/execute/async"])
def test_gateway_is_lenient_exactly_where_go_is(mesh: EmbeddedMesh, route: str) -> None:
    peer = mesh.peer_id("echo")
    ok = 200 if route == "/api/execute" else 202
    lenient = [
        # Unknown fields are ignored, and so is anything after the first JSON value.
        b'{"worker_id": "%s", "prompt": "x", "surprise": [1, {"a": null}]}' % peer.encode(),
        b'{"worker_id": "%s", "prompt": "x"} trailing garbage' % peer.encode(),
        # Whitespace-only prompts are the agent's problem, not the gateway's.
        b'{"worker_id": "%s", "prompt": "   "}' % peer.encode(),
        # Sent as text/plain, still decoded (the content type is not enforced).
        b'{"worker_id": "%s", "prompt": "x"}' % peer.encode(),
    ]
    with httpx.Client(base_url=mesh.url, timeout=30) as http:
        for body in lenient:
            resp = http.post(route, content=body, headers={"Content-Type": "text/plain"})
            assert resp.status_code == ok, body


class CountingListener:
    """A TCP listener that only counts connection attempts (a request would need one)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    server = CountingListener()
    yield server
    server.sock.close()


def _bad_calls(client: Any) -> list[Any]:
    t = client.tasks
    return [
        # Only what the Go gateway would refuse is refused here: a whitespace prompt and
        # any non-empty worker id (even "not-a-peer") are the gateway's to judge.
        lambda: t.run(worker_id=PEER, prompt=""),
        lambda: t.run(worker_id="", prompt="x"),
        lambda: t.run(worker_id=PEER, prompt="x", task_id="../../etc"),
        lambda: t.run(worker_id=PEER, prompt="x", task_id=""),
        lambda: t.run(worker_id=PEER, prompt=123),
        lambda: t.run(worker_id=["a"], prompt="x"),
        lambda: t.stream(worker_id=PEER, prompt=None),
        lambda: t.submit_async(worker_id=PEER, prompt=""),
        lambda: t.submit_async(worker_id="", prompt="x"),
        lambda: t.scatter(["ok", ""], peer_ids=[PEER]),
        lambda: t.scatter(["ok"], peer_ids=[""]),
        lambda: t.scatter("one string", peer_ids=[PEER]),
        lambda: t.scatter(["x"], peer_ids=[]),
        lambda: t.scatter(["x"], peer_ids=[PEER], max_concurrency=0),
    ]


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_client_refuses_bad_input_before_sending(
    listener: CountingListener, flavour: str
) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    client: Any = cls(listener.url, api_key=None, retries=0)
    try:
        for bad in _bad_calls(client):
            with pytest.raises(InvalidRequestError):
                await call(bad)
    finally:
        await call(client.close)
    assert listener.connections == 0


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_client_refuses_a_prompt_over_the_body_cap_before_sending(
    listener: CountingListener, flavour: str
) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    client: Any = cls(listener.url, api_key=None, retries=0)
    try:
        with pytest.raises(InvalidRequestError):
            await call(client.tasks.run, worker_id=PEER, prompt="x" * (MIB + 1))
        with pytest.raises(InvalidRequestError):
            await call(client.tasks.submit_async, worker_id=PEER, prompt="é" * (MIB // 2 + 1))
    finally:
        await call(client.close)
    assert listener.connections == 0
