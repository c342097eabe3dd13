"""Bearer auth: key rules, 401 codes, exempt routes, the failed-attempt limiter, bind guard."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import httpx
import pytest

from agentfm.mesh import AuthConfigError, CallableAgent, EmbeddedMesh, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import Iterator

KEY = "k" * 16
OTHER = "secret-key-number-two"


@pytest.fixture(scope="module")
def auth_mesh() -> Iterator[EmbeddedMesh]:
    worker = WorkerConfig("echo", "echo", CallableAgent(lambda p, c: p), max_tasks=8)
    with EmbeddedMesh([worker], api_keys=[KEY, OTHER]) as m:
        yield m


def raw_request(url: str, lines: list[str]) -> bytes:
    """Send a hand-written request (httpx folds duplicate headers) and return the response."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def error_of(resp: httpx.Response) -> tuple[int, str, str]:
    body = resp.json()["error"]
    assert body["type"] == "invalid_request_error"
    assert "www-authenticate" not in resp.headers
    return resp.status_code, body["code"], body["message"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (401, "unauthorized", "missing or malformed Bearer token")),
        ("Basic abc", (401, "unauthorized", "missing or malformed Bearer token")),
        ("Bearer", (401, "unauthorized", "missing or malformed Bearer token")),
        ("Bearerx", (401, "unauthorized", "missing or malformed Bearer token")),
        ("Bearer \t x", (401, "invalid_api_key", "invalid API key")),
        (f"Bearer  {KEY}", (401, "invalid_api_key", "invalid API key")),
        ("Bearer wrong-key-but-long-enough", (401, "invalid_api_key", "invalid API key")),
    ],
)
def test_rejections(
    auth_mesh: EmbeddedMesh, header: str | None, expected: tuple[int, str, str]
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    resp = httpx.get(auth_mesh.url + "/api/workers", headers=headers)
    assert error_of(resp) == expected
    assert resp.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("header", [f"Bearer {KEY}", f"bearer {OTHER}", f"BEARER {KEY}"])
def test_accepted(auth_mesh: EmbeddedMesh, header: str) -> None:
    resp = httpx.get(auth_mesh.url + "/api/workers", headers={"Authorization": header})
    assert resp.status_code == 200


def test_multiple_authorization_headers(auth_mesh: EmbeddedMesh) -> None:
    raw = raw_request(
        auth_mesh.url,
        [
            "GET /v1/models HTTP/1.1",
            "Host: x",
            f"Authorization: Bearer {KEY}",
            f"Authorization: Bearer {KEY}",
            "Connection: close",
        ],
    )
    assert raw.startswith(b"HTTP/1.1 401 ")
    assert raw.endswith(
        b'{"error":{"message":"multiple Authorization headers",'
        b'"type":"invalid_request_error","code":"unauthorized"}}\n'
    )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/metrics", 200),
        ("GET", "/nowhere", 404),
        ("OPTIONS", "/api/execute", 200),
    ],
)
def test_exempt_routes(auth_mesh: EmbeddedMesh, method: str, path: str, status: int) -> None:
    assert httpx.request(method, auth_mesh.url + path).status_code == status


@pytest.mark.parametrize(
    "path", ["/api/execute", "/api/execute/async", "/v1/chat/completions", "/v1/completions"]
)
def test_protected_posts_need_auth_before_validation(auth_mesh: EmbeddedMesh, path: str) -> None:
    resp = httpx.post(auth_mesh.url + path, content=b"not json")
    assert resp.status_code == 401


def test_events_and_about_are_protected(auth_mesh: EmbeddedMesh) -> None:
    assert httpx.get(auth_mesh.url + "/v1/about").status_code == 401
    assert httpx.get(auth_mesh.url + "/v1/events").status_code == 401


def test_failed_attempts_are_rate_limited() -> None:
    worker = WorkerConfig("echo", "echo", CallableAgent(lambda p, c: p))
    with EmbeddedMesh([worker], api_keys=[KEY]) as m, httpx.Client(base_url=m.url) as c:
        statuses = [c.get("/api/workers").status_code for _ in range(30)]
        assert statuses == [401] * 30
        resp = c.get("/api/workers", headers={"Authorization": "Bearer nope-nope-nope-nope"})
        assert resp.status_code == 429
        assert resp.headers["retry-after"] == "60"
        assert resp.json() == {
            "error": {
                "message": "too many failed auth attempts; slow down",
                "type": "invalid_request_error",
                "code": "rate_limited",
            }
        }
        # A valid key is never limited.
        assert c.get("/api/workers", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        metrics = c.get("/metrics").text
        assert 'agentfm_auth_attempts_total{outcome="missing"} 30' in metrics
        assert 'agentfm_auth_attempts_total{outcome="rate_limited"} 1' in metrics
        assert 'agentfm_auth_attempts_total{outcome="ok"} 1' in metrics


def test_short_key_refuses_to_start() -> None:
    with pytest.raises(AuthConfigError, match="shorter than 16 chars") as err:
        EmbeddedMesh([], api_keys=["short"]).start()
    assert "short" not in str(err.value).replace("shorter", "")


def test_env_keys_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFM_API_KEYS", f"  {KEY} , ,{KEY},{OTHER} ")
    worker = WorkerConfig("echo", "echo", CallableAgent(lambda p, c: p))
    with EmbeddedMesh([worker]) as m:
        assert httpx.get(m.url + "/api/workers").status_code == 401
        ok = httpx.get(m.url + "/api/workers", headers={"Authorization": f"Bearer {OTHER}"})
        assert ok.status_code == 200
    monkeypatch.setenv("AGENTFM_API_KEYS", "tooshort")
    with pytest.raises(AuthConfigError):
        EmbeddedMesh([worker]).start()


def test_public_bind_without_keys_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFM_ALLOW_UNAUTH_PUBLIC", raising=False)
    with pytest.raises(AuthConfigError, match="refusing to bind"):
        EmbeddedMesh([], host="0.0.0.0", api_keys=[]).start()
    monkeypatch.setenv("AGENTFM_ALLOW_UNAUTH_PUBLIC", "1")
    with EmbeddedMesh([], host="0.0.0.0", api_keys=[]) as m:
        assert httpx.get(m.url + "/health").status_code == 200
    monkeypatch.delenv("AGENTFM_ALLOW_UNAUTH_PUBLIC")
    with EmbeddedMesh([], host="0.0.0.0", api_keys=[KEY]) as m:
        assert httpx.get(m.url + "/health").status_code == 200
