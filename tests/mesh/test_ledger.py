"""The embedded mesh's reputation ledger: persistence, tamper detection, feedback,
completion ratings, the trust gate and trust-aware scatter (counted on the server)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

import httpx
import pytest

from agentfm import AgentFMClient, DispatchRefusedError, UntrustedPeersError
from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SERVED: Counter[str] = Counter()
_LOCK = threading.Lock()


def _counting(name: str) -> CallableAgent:
    def run(prompt: str, ctx: AgentContext) -> str:
        with _LOCK:
            SERVED[name] += 1
        return f"{name}: {prompt}\n"

    return CallableAgent(run)


def _workers() -> list[WorkerConfig]:
    # Two workers of one engine, so model routing could pick either.
    return [
        WorkerConfig("good", "shared", _counting("good"), max_tasks=4, seed="ledger:good"),
        WorkerConfig("bad", "shared", _counting("bad"), max_tasks=4, seed="ledger:bad"),
    ]


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[EmbeddedMesh]:
    SERVED.clear()
    with EmbeddedMesh(_workers(), api_keys=[], state_dir=tmp_path) as m:
        yield m


def _refusals(mesh: EmbeddedMesh) -> dict[str, int]:
    """Dispatch attempts the server's trust gate refused, per peer."""
    assert mesh._state is not None
    return dict(mesh._state.reputation.refusals)


def test_log_survives_a_restart_and_still_proves(tmp_path: Path) -> None:
    with EmbeddedMesh(_workers(), api_keys=[], state_dir=tmp_path) as mesh:
        peer = mesh.peer_id("good")
        with AgentFMClient(mesh.url, api_key=None) as client:
            receipt = client.peers.comment(peer, "steady", rating=0.5)
            before = client.peers.log(peer)
            gateway = client.peers.gateway_id()
    with (
        EmbeddedMesh(_workers(), api_keys=[], state_dir=tmp_path) as mesh,
        AgentFMClient(mesh.url, api_key=None) as client,
    ):
        after = client.peers.log(peer)
        assert [e.entry_hash for e in after.entries] == [e.entry_hash for e in before.entries]
        assert after.entries[1].entry_hash == receipt.ledger_hash
        assert client.peers.gateway_id() == gateway
        assert client.peers.verify(peer, receipt.ledger_hash)
        assert client.peers.comment_body(peer, receipt.cid) == "steady"
        assert client.peers.get(peer).honesty_score == pytest.approx(0.425)
        about = httpx.get(f"{mesh.url}/v1/about").json()
        assert about["ledger_tree_size"] == 2


def test_append_only_and_a_tampered_file_refuses_to_open(tmp_path: Path) -> None:
    with (
        EmbeddedMesh(_workers(), api_keys=[], state_dir=tmp_path) as mesh,
        AgentFMClient(mesh.url, api_key=None) as client,
    ):
        client.peers.comment(mesh.peer_id("bad"), "flaky", rating=-1.0)
    db = sqlite3.connect(tmp_path / "api_ledger.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE entries SET inserted_at = 0 WHERE idx = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM entries")
    # Someone bypasses the triggers and flips the rating's score byte.
    db.execute("DROP TRIGGER entries_no_update")
    (payload,) = db.execute("SELECT payload FROM entries WHERE idx = 2").fetchone()
    tampered = payload.replace(b"interactive", b"Interactive")
    db.execute("UPDATE entries SET payload = ? WHERE idx = 2", (tampered,))
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match=r"does not match its hash|not signed"):
        EmbeddedMesh(_workers(), api_keys=[], state_dir=tmp_path).start()


def test_execute_feedback_appends_comment_and_rating(mesh: EmbeddedMesh) -> None:
    peer = mesh.peer_id("good")
    with AgentFMClient(mesh.url, api_key=None) as client:
        result = client.tasks.run(
            worker_id=peer, prompt="hi", feedback="quick and right", feedback_rating=0.75
        )
        assert result.text == "good: hi\n"
        rating, comment = client.peers.log(peer).entries
        assert (rating.kind, rating.score, rating.context) == ("Rating", 0.75, "interactive")
        assert (comment.kind, comment.language) == ("Comment", "en")
        assert comment.text_cid is not None
        assert client.peers.comment_body(peer, comment.text_cid) == "quick and right"
        # No feedback, nothing written.
        client.tasks.run(worker_id=peer, prompt="again")
        assert client.peers.get(peer).entries_count == 2


def test_hourly_completion_rating_from_real_outcomes(mesh: EmbeddedMesh) -> None:
    peer = mesh.peer_id("good")
    assert mesh._state is not None
    rep = mesh._state.reputation
    with AgentFMClient(mesh.url, api_key=None) as client:
        for i in range(3):
            client.tasks.run(worker_id=peer, prompt=f"task {i}")
        assert mesh._call(rep.emit_due) == 0  # the window has not elapsed
        rep.clock = lambda: time.time() + 3601
        assert mesh._call(rep.emit_due) == 1
        [entry] = client.peers.log(peer).entries
        assert entry.context == "task:successes=3,failures=0,window=3600s"
        assert entry.score == pytest.approx(0.3)
        assert client.peers.reputation(peer).honesty == pytest.approx(0.85 * 0.3)


def test_trust_gate_refuses_below_the_floor(mesh: EmbeddedMesh) -> None:
    bad = mesh.peer_id("bad")
    with AgentFMClient(mesh.url, api_key=None) as client:
        client.peers.comment(bad, "returned garbage", rating=-1.0)
        with pytest.raises(DispatchRefusedError, match="reputation_below_floor"):
            client.tasks.run(worker_id=bad, prompt="hi")
        models = {m["id"]: m for m in httpx.get(f"{mesh.url}/v1/models").json()["data"]}
        assert models[bad]["agentfm_honesty_score"] == pytest.approx(-0.85)
        assert models[bad]["agentfm_dispatch_allowed"] is True
        chat = httpx.post(
            f"{mesh.url}/v1/chat/completions",
            json={"model": bad, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 404
        assert chat.json()["error"]["code"] == "model_not_found"
    assert SERVED["bad"] == 0


def test_scatter_never_dispatches_to_a_peer_rated_below_the_floor(mesh: EmbeddedMesh) -> None:
    good, bad = mesh.peer_id("good"), mesh.peer_id("bad")
    prompts = [f"item {i}" for i in range(8)]
    with AgentFMClient(mesh.url, api_key=None) as client:
        client.peers.comment(bad, "returned garbage", rating=-1.0)
        floor = httpx.get(f"{mesh.url}/v1/about").json()["reputation_floor"]
        results = client.tasks.scatter(prompts, peer_ids=[good, bad], min_honesty=floor)
        assert [r.index for r in results] == list(range(8))
        assert all(r.ok and r.peer_id == good for r in results)
        assert _refusals(mesh).get(bad, 0) == 0  # never even asked the gateway
        assert Counter({"good": 8}) == SERVED
        # Control: without the minimum the request reaches the gateway, whose gate refuses
        # it (counted above as zero so far); every item still gets its own failed result.
        refused = client.tasks.scatter(prompts[:3], peer_ids=[bad], max_retries=0)
        assert [r.ok for r in refused] == [False, False, False]
        assert all(isinstance(r.exception, DispatchRefusedError) for r in refused)
        assert _refusals(mesh).get(bad, 0) >= 1
        assert SERVED["bad"] == 0
        by_model = client.tasks.scatter_by_model(prompts[:2], model="shared", min_honesty=floor)
        assert {r.peer_id for r in by_model} == {good}
        assert [w.peer_id for w in client.workers.match("shared", min_honesty=floor)] == [good]
        with pytest.raises(UntrustedPeersError):
            client.tasks.scatter(prompts, peer_ids=[bad], min_honesty=floor)
