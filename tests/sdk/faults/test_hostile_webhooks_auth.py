"""Hostile webhooks (receiver and gateway SSRF guard) and hostile auth."""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import socket
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from agentfm import AgentFMClient, AsyncAgentFMClient, AuthenticationError, WebhookReceiver
from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm.mesh import _auth as mesh_auth
from agentfm.mesh import _webhook as mesh_webhook
from tests.helpers import call
from tests.sdk.faults.conftest import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "webhook-shared-secret"
PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"
BODY = json.dumps({"status": "completed", "task_id": "task_1", "worker_id": PEER}).encode()


@pytest.fixture
def hook() -> Iterator[tuple[WebhookReceiver, list[Any]]]:
    got: list[Any] = []
    with WebhookReceiver(port=0, callback=got.append, secret=SECRET) as receiver:
        yield receiver, got


def signed(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    sig = hmac.new(secret.encode(), body, "sha256").hexdigest()
    return {"Content-Type": "application/json", "X-AgentFM-Signature": sig}


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        (signed(secret="not-the-secret"), BODY, 401),
        ({"Content-Type": "application/json"}, BODY, 401),
        ({**signed(), "X-AgentFM-Signature": ""}, BODY, 401),
        (signed(BODY + b" "), BODY, 401),  # signature of another body
        (signed(b"x" * 70_000), b"x" * 70_000, 413),
        ({**signed(), "Content-Type": "text/plain"}, BODY, 415),
        ({**signed(), "Content-Type": "application/x-www-form-urlencoded"}, BODY, 415),
        (signed(b"[1, 2]"), b"[1, 2]", 400),
    ],
)
def test_receiver_refuses_hostile_deliveries(
    hook: tuple[WebhookReceiver, list[Any]], headers: dict[str, str], body: bytes, status: int
) -> None:
    receiver, got = hook
    assert httpx.post(receiver.url, content=body, headers=headers).status_code == status
    assert httpx.post(receiver.url, content=BODY, headers=signed()).status_code == 200
    assert wait_until(lambda: len(got) == 1)
    assert got[0].task_id == "task_1"


def test_receiver_refuses_a_body_without_length(hook: tuple[WebhookReceiver, list[Any]]) -> None:
    receiver, got = hook

    def chunks() -> Iterator[bytes]:
        yield BODY

    resp = httpx.post(receiver.url, content=chunks(), headers=signed())
    assert resp.status_code == 411
    assert got == []


def test_receiver_slowloris_is_cut_and_others_are_served(
    hook: tuple[WebhookReceiver, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentfm import webhook

    monkeypatch.setattr(webhook._Handler, "timeout", 0.5)
    receiver, got = hook
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=20) as slow:
        slow.sendall(b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n")
        # While one client dribbles its headers, a real delivery still goes through.
        assert httpx.post(receiver.url, content=BODY, headers=signed()).status_code == 200
        # The server drops the idle socket on its own (recv sees EOF, not our timeout).
        assert slow.recv(1024) == b""
    assert wait_until(lambda: len(got) == 1)


def test_signature_check_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentfm import webhook

    seen: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhook.hmac, "compare_digest", spy)
    assert not webhook.verify_signature(BODY, "0" * 64, SECRET)
    assert webhook.verify_signature(BODY, signed()["X-AgentFM-Signature"], SECRET)
    assert len(seen) == 2


# -- the gateway's SSRF guard --------------------------------------------------------------


@pytest.fixture
def open_hook() -> Iterator[tuple[WebhookReceiver, list[Any]]]:
    got: list[Any] = []
    with WebhookReceiver(port=0, callback=got.append, secret=None) as receiver:
        yield receiver, got


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]


def test_gateway_refuses_every_spelling_of_a_private_target(
    open_hook: tuple[WebhookReceiver, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver, got = open_hook
    monkeypatch.delenv("AGENTFM_WEBHOOK_ALLOW_PRIVATE", raising=False)
    caplog.set_level(logging.WARNING, logger="agentfm.mesh.webhook")
    port = receiver.port
    # Each of these reaches the receiver if the guard lets it through.
    urls = [
        f"http://127.1:{port}/cb",
        f"http://2130706433:{port}/cb",
        f"http://0x7f000001:{port}/cb",
        f"http://[::ffff:127.0.0.1]:{port}/cb",
        f"http://localhost.:{port}/cb",
        f"http://user@127.0.0.1:{port}/cb",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/x",
        "http://[::]/x",
        "http://10.0.0.1/x",
    ]
    worker = WorkerConfig("fast", "fast", CallableAgent(lambda p, c: "ok\n"), max_tasks=16)
    with EmbeddedMesh([worker], api_keys=[]) as mesh:
        peer = mesh.peer_id("fast")
        for url in urls:
            resp = httpx.post(
                mesh.url + "/api/execute/async",
                json={"worker_id": peer, "prompt": "p", "webhook_url": url},
            )
            assert resp.status_code == 202
        assert wait_until(lambda: len(_refusals(caplog)) == len(urls))
    assert got == []


@pytest.mark.parametrize(
    "answers",
    [
        [["93.184.216.34", "127.0.0.1"]],  # one private address among public ones
        [["93.184.216.34"], ["127.0.0.1"]],  # rebinding between the check and the dial
        [["93.184.216.34"], ["169.254.169.254"]],
    ],
)
async def test_dns_answers_pointing_inside_are_refused(
    monkeypatch: pytest.MonkeyPatch, answers: list[list[str]]
) -> None:
    queue = list(answers)
    posts: list[str] = []

    async def fake_resolve(host: str, port: int) -> list[str]:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    class NoClient:
        def __init__(self, *a: Any, **k: Any) -> None:
            posts.append("constructed")

    monkeypatch.setattr(mesh_webhook, "resolve", fake_resolve)
    monkeypatch.setattr(mesh_webhook.httpx, "AsyncClient", NoClient)
    status = await mesh_webhook.deliver(
        "http://hooks.example.com/cb", "task_1", PEER, secret="", allow_private=False
    )
    assert status is None
    assert posts == []


# -- hostile auth ---------------------------------------------------------------------------

KEY = "reliability-auth-key-000000"
OTHER = "reliability-auth-key-111111"


def test_every_configured_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(mesh_auth.hmac, "compare_digest", spy)
    keys = mesh_auth.parse_keys([KEY, OTHER])
    # A match on the first key still compares against the second: no early exit.
    assert mesh_auth.check_header([f"Bearer {KEY}".encode()], keys) == mesh_auth.OK
    assert [b for _, b in calls] == list(keys)
    calls.clear()
    assert mesh_auth.check_header([b"Bearer " + b"x" * 40], keys) == mesh_auth.INVALID
    assert len(calls) == 2
    # No ordinary comparison of the token anywhere in the check.
    source = inspect.getsource(mesh_auth.check_header)
    assert "token ==" not in source
    assert "token in" not in source
    assert "== token" not in source


@pytest.fixture(scope="module")
def auth_mesh() -> Iterator[EmbeddedMesh]:
    worker = WorkerConfig("echo", "echo", CallableAgent(lambda p, c: p + "\n"), max_tasks=8)
    with EmbeddedMesh([worker], api_keys=[KEY, OTHER]) as mesh:
        yield mesh


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize(
    ("key", "code"), [(None, "unauthorized"), ("a-wrong-key-of-good-length", "invalid_api_key")]
)
async def test_client_without_a_valid_key_is_refused_with_a_typed_error(
    auth_mesh: EmbeddedMesh, flavour: str, key: str | None, code: str
) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    client: Any = cls(auth_mesh.url, api_key=key)
    peer = auth_mesh.peer_id("echo")
    try:
        for fn, kwargs in (
            (client.workers.list, {}),
            (client.tasks.run, {"worker_id": peer, "prompt": "x"}),
            (client.tasks.submit_async, {"worker_id": peer, "prompt": "x"}),
            (client.openai.models.list, {}),
        ):
            with pytest.raises(AuthenticationError) as err:
                await call(fn, **kwargs)
            assert err.value.status == 401
            assert err.value.code == code
        assert await call(client.ping)  # /health stays open
        good: Any = client.with_options(api_key=OTHER)
        assert (await call(good.tasks.run, worker_id=peer, prompt="in")).text == "in\n"
        await call(good.close)
    finally:
        await call(client.close)
