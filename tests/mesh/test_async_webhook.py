"""POST /api/execute/async, webhook delivery (signature, SSRF guard) and the in-flight cap."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import queue
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx
import pytest

from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm.mesh._webhook import check_url, is_blocked_ip
from tests.mesh.test_routes import assert_plain

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "webhook-secret"


class Receiver:
    """A loopback HTTP server recording each POST (headers, raw body)."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                calls.put(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


gate = threading.Event()


async def _gated(prompt: str, ctx: AgentContext) -> str:
    # The gate is a threading.Event set by the test thread; poll it from the mesh loop.
    while not gate.is_set():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return "done"


def _writes(prompt: str, ctx: AgentContext) -> str:
    (ctx.output_dir / "out.txt").write_text(prompt)
    return "ok"


def make_mesh(**kw: object) -> EmbeddedMesh:
    workers = [
        WorkerConfig("fast", "fast", CallableAgent(_writes), max_tasks=4, seed="a:fast"),
        WorkerConfig("gated", "gated", CallableAgent(_gated), max_tasks=8, seed="a:gated"),
    ]
    return EmbeddedMesh(workers, api_keys=[], **kw)  # type: ignore[arg-type]


def submit(mesh: EmbeddedMesh, name: str, **body: object) -> httpx.Response:
    payload = {"worker_id": mesh.peer_id(name), "prompt": "p", **body}
    return httpx.post(mesh.url + "/api/execute/async", json=payload, timeout=30)


def test_accepted_body_and_signed_webhook(receiver: Receiver) -> None:
    with make_mesh(webhook_secret=SECRET, allow_private_webhooks=True) as mesh:
        resp = submit(mesh, "fast", webhook_url=receiver.url)
        assert resp.status_code == 202
        assert resp.headers["content-type"] == "application/json"
        task_id = resp.json()["task_id"]
        assert re.fullmatch(r"task_[0-9a-f]{24}", task_id)
        assert resp.content == (
            b'{"message":"Task dispatched to P2P mesh.","status":"queued","task_id":"%s"}\n'
            % task_id.encode()
        )
        headers, body = receiver.calls.get(timeout=10)
        # The zip exists before the webhook fires.
        assert (mesh.artifacts_dir / f"{task_id}.zip").is_file()
        peer = mesh.peer_id("fast")
    assert body == b'{"status":"completed","task_id":"%s","worker_id":"%s"}' % (
        task_id.encode(),
        peer.encode(),
    )
    assert headers["content-type"] == "application/json"
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-agentfm-signature"] == digest


def test_worker_id_in_webhook_is_as_submitted(receiver: Receiver) -> None:
    with make_mesh(allow_private_webhooks=True, webhook_secret="") as mesh:
        peer = mesh.peer_id("fast")
        submit(mesh, "fast", webhook_url=receiver.url)
        headers, body = receiver.calls.get(timeout=10)
    assert body.endswith(b',"worker_id":"%s"}' % peer.encode())
    assert "x-agentfm-signature" not in headers


def test_env_allows_private(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFM_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("AGENTFM_WEBHOOK_SECRET", SECRET)
    with make_mesh() as mesh:
        submit(mesh, "fast", webhook_url=receiver.url)
        headers, body = receiver.calls.get(timeout=10)
    assert headers["x-agentfm-signature"] == hmac.new(SECRET.encode(), body, "sha256").hexdigest()


def test_private_url_is_refused(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AGENTFM_WEBHOOK_ALLOW_PRIVATE", raising=False)
    caplog.set_level(logging.WARNING, logger="agentfm.mesh.webhook")
    with make_mesh() as mesh:
        assert submit(mesh, "fast", webhook_url=receiver.url).status_code == 202
        localhost_url = receiver.url.replace("127.0.0.1", "localhost")
        assert submit(mesh, "fast", webhook_url=localhost_url).status_code == 202
        deadline = time.monotonic() + 10
        while len(_refusals(caplog)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(_refusals(caplog)) == 2
    assert receiver.calls.empty()


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]


@pytest.mark.parametrize(
    ("ip", "blocked"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("224.0.0.1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("0.0.0.0", True),
        ("::ffff:127.0.0.1", True),
        ("8.8.8.8", False),
        ("100.64.0.1", False),
        ("2001:4860:4860::8888", False),
    ],
)
def test_ssrf_classes(ip: str, blocked: bool) -> None:
    import ipaddress

    assert is_blocked_ip(ipaddress.ip_address(ip)) is blocked


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "http:///nohost", "http://localhost:1/x", "http://10.0.0.1/"]
)
async def test_check_url_refusals(url: str) -> None:
    from agentfm.mesh._webhook import WebhookRefused

    with pytest.raises(WebhookRefused):
        await check_url(url, allow_private=False)


async def test_check_url_allows_private_with_flag() -> None:
    assert await check_url("http://127.0.0.1:9/x", allow_private=True) == ("http", "127.0.0.1", 9)


def test_validation_order() -> None:
    with make_mesh() as mesh:
        post = lambda body: httpx.post(mesh.url + "/api/execute/async", content=body)  # noqa: E731
        assert_plain(httpx.get(mesh.url + "/api/execute/async"), 405, "Method not allowed")
        assert_plain(post(b"{"), 400, "Invalid JSON payload")
        assert_plain(post(b'{"webhook_url": 1}'), 400, "Invalid JSON payload")
        assert_plain(post(b"{}"), 400, "worker_id is required")
        assert_plain(post(b'{"worker_id": "w"}'), 400, "prompt is required")
        assert_plain(post(b'{"worker_id": "w", "prompt": "p"}'), 404, "Worker not found or offline")


def test_in_flight_cap() -> None:
    gate.clear()
    with make_mesh(max_async_tasks=2) as mesh:
        try:
            assert submit(mesh, "gated").status_code == 202
            assert submit(mesh, "gated").status_code == 202
            resp = submit(mesh, "gated")
            assert resp.status_code == 503
            assert resp.headers["retry-after"] == "5"
            assert resp.content == (
                b'{"error":{"message":"too many async tasks in flight; retry shortly",'
                b'"type":"server_error","code":"async_capacity_exhausted"}}\n'
            )
        finally:
            gate.set()
