"""Wire bytes of the simple routes: /health, /api/workers, /v1/models, /v1/about, /metrics,
404/405, OPTIONS, CORS and the Origin check."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from agentfm.mesh import EmbeddedMesh

PLAIN = "text/plain; charset=utf-8"
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-allow-headers": "Content-Type",
}


def assert_plain(resp: httpx.Response, status: int, text: str) -> None:
    assert resp.status_code == status
    assert resp.headers["content-type"] == PLAIN
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.content == text.encode() + b"\n"


def assert_cors(resp: httpx.Response, present: bool = True) -> None:
    for key, value in CORS.items():
        assert resp.headers.get(key) == (value if present else None)


def test_health_body_and_headers(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    resp = http.get("/health")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.content == b'{"online_workers":%d,"status":"ok"}\n' % len(mesh.workers)
    assert_cors(resp, present=False)
    assert "server" not in resp.headers


@pytest.mark.parametrize("method", ["POST", "HEAD", "OPTIONS", "DELETE"])
def test_health_other_methods_are_405(http: httpx.Client, method: str) -> None:
    resp = http.request(method, "/health")
    assert resp.status_code == 405
    if method != "HEAD":
        assert_plain(resp, 405, "Method not allowed")


@pytest.mark.parametrize("path", ["/", "/nope", "/api/execute/", "/health/", "/v1/models/x"])
def test_unknown_paths_are_go_mux_404(http: httpx.Client, path: str) -> None:
    resp = http.post(path)
    assert_plain(resp, 404, "404 page not found")
    assert_cors(resp, present=False)


def test_workers_listing_shape(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    resp = http.get("/api/workers")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.content.endswith(b"}\n")
    assert_cors(resp)
    body = resp.json()
    assert list(body) == ["success", "agents", "online_count", "offline_count"]
    assert body["success"] is True
    assert body["online_count"] == len(mesh.workers)
    assert body["offline_count"] == 0
    assert [a["peer_id"] for a in body["agents"]] == [w.peer_id for w in mesh.workers]
    entry = body["agents"][0]
    assert list(entry) == [
        "peer_id", "author", "name", "status", "hardware", "description", "cpu_usage_pct",
        "ram_free_gb", "current_tasks", "max_tasks", "has_gpu", "gpu_used_gb", "gpu_total_gb",
        "gpu_usage_pct", "agent_capability", "honesty_score", "is_equivocator",
        "dispatch_allowed", "online", "last_seen",
    ]  # fmt: skip
    assert re.fullmatch(r"12D3KooW[1-9A-HJ-NP-Za-km-z]{44}", entry["peer_id"])
    assert re.fullmatch(r"echo-engine \(CPU: \d+ Cores\)", entry["hardware"])
    assert entry["status"] == "AVAILABLE"
    assert entry["online"] is True
    assert entry["agent_capability"] == "echo"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", entry["last_seen"])
    # Go prints integral floats without a fraction.
    raw = resp.text
    assert '"gpu_used_gb":0,' in raw
    assert '"honesty_score":0,' in raw


def test_workers_405_is_plain_with_cors(http: httpx.Client) -> None:
    resp = http.post("/api/workers")
    assert_plain(resp, 405, "Method not allowed")
    assert_cors(resp)


def test_gpu_hardware_rendering() -> None:
    from agentfm.mesh import CallableAgent, WorkerConfig

    cfg = WorkerConfig(
        "gpu",
        "llama3.2:70b",
        CallableAgent(lambda p, c: p),
        has_gpu=True,
        gpu_total_gb=24,
        gpu_used_gb=6.25,
    )
    with EmbeddedMesh([cfg], api_keys=[]) as m:
        entry = httpx.get(m.url + "/api/workers").json()["agents"][0]
    assert entry["hardware"] == "llama3.2:70b (GPU VRAM: 6.2/24.0 GB)"
    assert entry["has_gpu"] is True
    assert entry["gpu_usage_pct"] == pytest.approx(26.04)


def test_models_listing(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    resp = http.get("/v1/models")
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [w.peer_id for w in mesh.workers]
    entry = body["data"][0]
    assert list(entry)[:10] == [
        "id", "object", "created", "owned_by", "description", "agentfm_name", "agentfm_engine",
        "agentfm_status", "agentfm_hardware", "agentfm_current_tasks",
    ]  # fmt: skip
    assert entry["object"] == "model"
    assert entry["owned_by"] == "agentfm"
    assert entry["agentfm_engine"] == "echo-engine"
    assert entry["agentfm_online"] is True
    assert "agentfm_last_seen" not in entry
    assert entry["description"] == "echo · echo-engine"
    assert len({m["created"] for m in body["data"]}) == 1


def test_models_description_composition() -> None:
    from agentfm.mesh import CallableAgent, WorkerConfig

    cfg = WorkerConfig("a", "e", CallableAgent(lambda p, c: p), description="does <things> & more")
    with EmbeddedMesh([cfg], api_keys=[]) as m:
        resp = httpx.get(m.url + "/v1/models")
    assert resp.json()["data"][0]["description"] == "a · e — does <things> & more"
    assert "\\u003cthings\\u003e \\u0026 more" in resp.text


def test_models_405_is_envelope(http: httpx.Client) -> None:
    resp = http.post("/v1/models")
    assert resp.status_code == 405
    assert resp.content == (
        b'{"error":{"message":"GET only","type":"invalid_request_error",'
        b'"code":"method_not_allowed"}}\n'
    )


def test_about(http: httpx.Client) -> None:
    body = http.get("/v1/about").json()
    assert list(body) == [
        "boss_peer_id", "relay_peer_id", "relay_multiaddr", "reputation_floor",
        "ledger_tree_size", "version", "uptime_seconds",
    ]  # fmt: skip
    assert body["boss_peer_id"].startswith("12D3KooW")
    assert body["version"] == "1.3.0"
    assert_plain(http.post("/v1/about"), 405, "Method not allowed")


def test_metrics_exposition(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    http.post("/api/execute", json={"worker_id": mesh.peer_id("echo"), "prompt": "m"})
    resp = http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = resp.text
    assert "# TYPE agentfm_tasks_total counter" in text
    assert re.search(r'^agentfm_tasks_total\{status="ok"\} [1-9]', text, re.M)
    assert 'agentfm_tasks_total{status="timeout"} 0' in text
    assert f"agentfm_workers_online {len(mesh.workers)}" in text
    assert 'agentfm_task_duration_seconds_bucket{le="+Inf"}' in text
    assert 'agentfm_stream_errors_total{protocol="feedback",reason="unknown"} 0' in text
    assert 'agentfm_auth_attempts_total{outcome="rate_limited"} 0' in text
    assert "process_cpu_seconds_total" in text
    assert_cors(resp)


@pytest.mark.parametrize(
    "path", ["/api/workers", "/api/execute", "/v1/chat/completions", "/v1/about", "/metrics"]
)
def test_options_preflight(http: httpx.Client, path: str) -> None:
    resp = http.options(path, headers={"Origin": "https://evil.example"})
    assert resp.status_code == 200
    assert resp.content == b""
    assert_cors(resp)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("https://127.0.0.1", True),
        ("http://[::1]:8080", True),
        ("https://evil.example", False),
        ("null", False),
        ("file:///tmp/x.html", False),
    ],
)
def test_origin_check_on_post(
    http: httpx.Client, mesh: EmbeddedMesh, origin: str, allowed: bool
) -> None:
    resp = http.post(
        "/api/execute",
        json={"worker_id": mesh.peer_id("echo"), "prompt": "o"},
        headers={"Origin": origin},
    )
    if allowed:
        assert resp.status_code == 200
    else:
        assert_plain(resp, 403, "cross-origin request refused")
        assert_cors(resp)


def test_origin_not_checked_on_get(http: httpx.Client) -> None:
    assert http.get("/api/workers", headers={"Origin": "https://evil.example"}).status_code == 200


def test_peers_subtree_is_served_by_the_ledger(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    resp = http.get(f"/v1/peers/{mesh.peer_id('echo')}")
    assert resp.status_code == 200
    assert json.loads(resp.content)["peer_id"] == mesh.peer_id("echo")
    other = http.get(f"/v1/peers/{mesh.peer_id('echo')}/other")
    assert json.loads(other.content)["error"]["code"] == "not_found"
