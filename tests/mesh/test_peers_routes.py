"""``/v1/peers/*`` of the embedded gateway on the wire: check order, bytes and side effects."""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm.mesh._peerid import peer_id_from_seed, seed_from_text

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

UNKNOWN = peer_id_from_seed(seed_from_text("routes:unknown"))


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[EmbeddedMesh]:
    worker = WorkerConfig("w", "e", CallableAgent(lambda p, c: p + "\n"), seed="routes:w")
    with EmbeddedMesh([worker], api_keys=[], state_dir=tmp_path) as m:
        yield m


@pytest.fixture
def http(mesh: EmbeddedMesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.url, timeout=30) as client:
        yield client


def _code(resp: httpx.Response) -> tuple[int, str, str]:
    assert resp.headers["content-type"] == "application/json"
    assert resp.content.endswith(b"}\n")
    error = resp.json()["error"]
    return resp.status_code, error["type"], error["code"]


def test_sub_route_dispatch_and_path_cleaning(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    peer = mesh.peer_id("w")
    inv = "invalid_request_error"
    assert _code(http.get("/v1/peers/")) == (404, inv, "not_found")
    assert _code(http.get(f"/v1/peers/{peer}/")) == (404, inv, "not_found")
    assert _code(http.get(f"/v1/peers/{peer}/other")) == (404, inv, "not_found")
    slash = http.get("/v1/peers")
    assert (slash.status_code, slash.headers["location"]) == (301, "/v1/peers/")
    moved = http.get("/v1/peers//log")
    assert (moved.status_code, moved.headers["location"]) == (301, "/v1/peers/log")
    assert _code(http.get("/v1/peers/log")) == (400, inv, "bad_request")  # no id left
    assert _code(http.post(f"/v1/peers/{peer}/log")) == (405, inv, "method_not_allowed")
    assert _code(http.get(f"/v1/peers/{peer}/comments/self")) == (405, inv, "method_not_allowed")
    assert _code(http.get(f"/v1/peers/{peer}/comments")) == (405, inv, "method_not_allowed")
    assert _code(http.get(f"/v1/peers/{peer}/comments/")) == (400, inv, "bad_request")
    assert _code(http.get(f"/v1/peers/{peer}/proof")) == (400, inv, "bad_request")
    # The body and proof routes never parse the id segment.
    assert _code(http.get("/v1/peers/nonsense/proof", params={"entry": "00" * 32})) == (
        404,
        inv,
        "entry_not_found",
    )


def test_strict_json_and_check_order_of_self_comments(
    http: httpx.Client, mesh: EmbeddedMesh
) -> None:
    url = f"/v1/peers/{mesh.peer_id('w')}/comments/self"
    post = lambda body: http.post(url, content=body)  # noqa: E731
    assert _code(post(b'{"text":"a"} {}'))[2] == "bad_json"  # trailing data
    assert _code(post(b""))[2] == "bad_json"
    assert _code(post(b'{"text":5}'))[2] == "bad_json"
    assert _code(post(b'{"text":"a","rating":"high"}'))[2] == "bad_json"
    assert _code(post(b"null"))[2] == "missing_field"
    assert _code(post(b'{"TEXT":"","rating":9}'))[2] == "missing_field"  # text before rating
    assert _code(post(b'{"Text":"a","rating":-1.01}'))[2] == "bad_rating"
    assert _code(http.post(f"/v1/peers/{UNKNOWN[:-3]}/comments/self", json={}))[2] == "bad_peer_id"
    ok = post(b'{"text":"fine","rating":0,"attached_rating_hash":"zz"}')
    assert ok.status_code == 201
    entries = http.get(f"/v1/peers/{mesh.peer_id('w')}/log").json()["entries"]
    rating = next(e for e in entries if e["kind"] == "Rating")
    assert "score" not in rating  # a score of exactly 0 is omitted
    assert "language" not in next(e for e in entries if e["kind"] == "Comment")


def test_log_entries_are_html_escaped_and_counts(http: httpx.Client, mesh: EmbeddedMesh) -> None:
    peer = mesh.peer_id("w")
    http.post(f"/v1/peers/{peer}/comments/self", json={"text": "a", "language": "<b>"})
    http.post(f"/v1/peers/{peer}/comments/self", json={"text": "b", "rating": 0.5})
    raw = http.get(f"/v1/peers/{peer}/log").content
    assert b'"language":"\\u003cb\\u003e"' in raw
    summary = http.get(f"/v1/peers/{peer}").json()
    assert summary["entries_count"] == 3
    assert summary["rater_summary"] == {"verified_raters_count": 1, "unverified_raters_count": 0}
    reputation = http.get(f"/v1/peers/{peer}/reputation").json()
    assert reputation["rating_count"] == 1
    assert list(reputation) == [
        "peer_id", "scores", "rating_count", "last_updated", "is_equivocator", "agent_capability",
    ]  # fmt: skip


def test_caller_signed_rejection_still_stores_the_body(
    http: httpx.Client, mesh: EmbeddedMesh
) -> None:
    peer = mesh.peer_id("w")
    gateway = http.get("/v1/about").json()["boss_peer_id"]
    body = {
        "rater_peer_id": gateway,
        "text": "kept anyway",
        "timestamp_unix_ns": time.time_ns(),
        "signature": base64.b64encode(b"\x01" * 64).decode(),
    }
    resp = http.post(f"/v1/peers/{peer}/comments", json=body)
    assert _code(resp)[0:3:2] == (401, "bad_signature")
    cid = "1220" + __import__("hashlib").sha256(b"kept anyway").hexdigest()
    assert http.get(f"/v1/peers/{peer}/comments/{cid}").text == "kept anyway"
    assert http.get(f"/v1/peers/{peer}/log").json()["returned"] == 0  # nothing appended
    for broken, code in (
        ({**body, "timestamp_unix_ns": 1.5}, "bad_json"),
        ({**body, "timestamp_unix_ns": 0}, "missing_field"),
        ({**body, "signature": ""}, "missing_field"),
        ({**body, "signature": "not base64!"}, "bad_signature"),
        ({**body, "rater_peer_id": UNKNOWN}, "non_self_submitter"),
    ):
        assert _code(http.post(f"/v1/peers/{peer}/comments", json=broken))[2] == code


def test_disabled_ledger_codes() -> None:
    worker = WorkerConfig("w", "e", CallableAgent(lambda p, c: p + "\n"), seed="routes:w")
    with (
        EmbeddedMesh([worker], api_keys=[], ledger=False) as mesh,
        httpx.Client(base_url=mesh.url) as http,
    ):
        peer = mesh.peer_id("w")
        assert _code(http.get(f"/v1/peers/{peer}/comments"))[0:3:2] == (501, "not_implemented")
        assert _code(http.post(f"/v1/peers/{peer}/comments/self", json={"text": "x"}))[2] == (
            "ledger_unavailable"
        )
        cid = "1220" + "00" * 32
        assert _code(http.get(f"/v1/peers/{peer}/comments/{cid}.json"))[2] == "comments_unavailable"
        assert _code(http.get(f"/v1/peers/{peer}/x"))[2] == "not_found"
        assert http.get("/v1/about").json()["ledger_tree_size"] == 0
        # Feedback is silently ignored and the gate allows everything.
        done = http.post(
            "/api/execute",
            json={"worker_id": peer, "prompt": "hi", "feedback": "x", "feedback_rating": -1},
        )
        assert done.status_code == 200
        [agent] = http.get("/api/workers").json()["agents"]
        assert (agent["honesty_score"], agent["dispatch_allowed"]) == (0, True)


def test_openai_route_outcomes_feed_completion_ratings(
    http: httpx.Client, mesh: EmbeddedMesh
) -> None:
    peer = mesh.peer_id("w")
    for _ in range(2):
        resp = http.post(
            "/v1/chat/completions",
            json={"model": peer, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.status_code == 200
    assert mesh._state is not None
    rep = mesh._state.reputation
    rep.clock = lambda: time.time() + 3600
    assert mesh._call(rep.emit_due) == 1
    [entry] = json.loads(http.get(f"/v1/peers/{peer}/log").content)["entries"]
    assert entry["context"] == "task:successes=2,failures=0,window=3600s"
