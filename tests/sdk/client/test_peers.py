"""``client.peers`` against two backends running the SAME test bodies.

* ``mesh``: the embedded gateway with its SQLite ledger (a real server on loopback).
* ``go``: respx replaying the Go gateway's exact answers for the same exchange, written
  from shared/peers-protocol.md (field order, omitted keys, codes and messages as Go sends
  them). An unexpected request fails the test.

Each runs with the sync and the async client.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agentfm import (
    AgentFMClient,
    AsyncAgentFMClient,
    InvalidRequestError,
    LedgerNotFoundError,
    LedgerUnavailableError,
    NotSelfSubmitterError,
    SignatureRejectedError,
)
from agentfm._entries import comment_digest, parse_peer_id
from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm.mesh._peerid import load_or_create_key, peer_id_from_seed, seed_from_text
from tests.helpers import call, collect

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

GW = "http://go-gateway.test"
BAD_ID = "12D3KooWA"
TEXT = "slow but right"
JSON_CT = {"content-type": "application/json"}


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def node(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node, computed here independently of the SDK."""
    return sha(b"\x01" + left + right)


def cid_hex(text: str) -> str:
    return "1220" + sha(text.encode()).hex()


def go_json(obj: Any) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def envelope(status: int, code: str, message: str) -> tuple[int, bytes]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return status, go_json({"error": {"message": message, "type": kind, "code": code}})


@dataclass
class Backend:
    """What a test body needs: ids, a signing key for the gateway, and the client."""

    name: str
    client: Any
    gateway_id: str
    worker: str
    unknown: str
    gateway_key: Ed25519PrivateKey
    other_key: Ed25519PrivateKey
    other_id: str
    # go only: (method, path, sorted query) -> answers, consumed in order
    transcript: dict[tuple[str, str, str], list[tuple[int, bytes]]] = field(default_factory=dict)

    def expect(self, method: str, path: str, answer: tuple[int, bytes], **query: str) -> None:
        """Queue the Go gateway's answer to one request (ignored by the mesh backend)."""
        key = (method, path, "&".join(f"{k}={v}" for k, v in sorted(query.items())))
        self.transcript.setdefault(key, []).append(answer)


def _key(seed_text: str) -> tuple[Ed25519PrivateKey, str]:
    seed = seed_from_text(seed_text)
    return Ed25519PrivateKey.from_private_bytes(seed), peer_id_from_seed(seed)


def _replay(backend: Backend, request: httpx.Request) -> httpx.Response:
    query = "&".join(f"{k}={v}" for k, v in sorted(request.url.params.multi_items()))
    key = (request.method, request.url.path, query)
    answers = backend.transcript.get(key)
    if not answers:
        return httpx.Response(599, text=f"unexpected request {key}")
    status, body = answers.pop(0)
    content_type = "application/json" if body.startswith(b"{") else "text/plain; charset=utf-8"
    return httpx.Response(status, content=body, headers={"content-type": content_type})


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _client(flavour: str, url: str) -> Any:
    if flavour == "sync":
        return AgentFMClient(url, api_key=None, retries=0)
    return AsyncAgentFMClient(url, api_key=None, retries=0)


async def _close(client: Any) -> None:
    await call(client.close)


@pytest.fixture(params=["mesh", "go"])
async def backend(
    request: pytest.FixtureRequest, flavour: str, tmp_path: Path
) -> AsyncIterator[Backend]:
    other_key, other_id = _key("peers-test:other")
    unknown = peer_id_from_seed(seed_from_text("peers-test:unknown"))
    if request.param == "mesh":
        worker = WorkerConfig("w", "e", CallableAgent(lambda p, c: p + "\n"), seed="peers:w")
        with EmbeddedMesh([worker], api_keys=[], state_dir=tmp_path) as mesh:
            seed = load_or_create_key(tmp_path / "gateway.key")
            client = _client(flavour, mesh.url)
            yield Backend(
                "mesh",
                client,
                gateway_id=peer_id_from_seed(seed),
                worker=mesh.peer_id("w"),
                unknown=unknown,
                gateway_key=Ed25519PrivateKey.from_private_bytes(seed),
                other_key=other_key,
                other_id=other_id,
            )
            await _close(client)
        return
    gateway_key, gateway_id = _key("peers-test:go-gateway")
    backend = Backend(
        "go",
        _client(flavour, GW),
        gateway_id=gateway_id,
        worker=peer_id_from_seed(seed_from_text("peers-test:go-worker")),
        unknown=unknown,
        gateway_key=gateway_key,
        other_key=other_key,
        other_id=other_id,
    )
    with respx.mock(base_url=GW, assert_all_called=False) as router:
        router.route().mock(side_effect=lambda req: _replay(backend, req))
        yield backend
        left = {k: v for k, v in backend.transcript.items() if v}
        assert not left, f"the test did not make these requests: {left}"
    await _close(backend.client)


# -- Go answers ----------------------------------------------------------------------------


def _summary(peer: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"peer_id": peer, "agent_name": "", "online": False}
    body.update(
        {
            "honesty_score": 0,
            "is_equivocator": False,
            "dispatch_allowed": True,
            "entries_count": 0,
            "rater_summary": {"verified_raters_count": 0, "unverified_raters_count": 0},
        }
    )
    body.update(over)
    return body


def _log(peer: str, entries: list[dict[str, Any]], limit: int = 50, offset: int = 0) -> bytes:
    return go_json(
        {
            "subject": peer,
            "limit": limit,
            "offset": offset,
            "returned": len(entries),
            "entries": entries,
        }
    )


def _comment_entry(b: Backend, digest: bytes, text: str, at: str) -> dict[str, Any]:
    return {
        "received_at": at,
        "kind": "Comment",
        "entry_hash": digest.hex(),
        "rater_peer_id": b.gateway_id,
        "language": "en",
        "rater_status": "verified",
        "rater_honesty_score": 1,
        "text_cid": cid_hex(text),
    }


# -- tests ---------------------------------------------------------------------------------


async def test_unknown_peer_is_200_with_zero_data(backend: Backend) -> None:
    b = backend
    b.expect("GET", f"/v1/peers/{b.unknown}", (200, go_json(_summary(b.unknown))))
    rep = {"peer_id": b.unknown, "scores": {"honesty": 0}, "rating_count": 0}
    b.expect(
        "GET", f"/v1/peers/{b.unknown}/reputation", (200, go_json(rep | {"is_equivocator": False}))
    )
    b.expect(
        "GET", f"/v1/peers/{b.unknown}/log", (200, _log(b.unknown, [])), limit="50", offset="0"
    )

    summary = await call(b.client.peers.get, b.unknown)
    assert summary.peer_id == b.unknown
    assert (summary.online, summary.agent_name, summary.honesty_score) == (False, "", 0.0)
    assert summary.dispatch_allowed
    assert not summary.is_equivocator
    assert summary.entries_count == 0
    assert summary.last_entry_at is None
    assert summary.rater_summary.verified_raters_count == 0
    score = await call(b.client.peers.reputation, b.unknown)
    assert score.scores == {"honesty": 0.0}
    assert score.rating_count == 0
    assert score.last_updated is None
    page = await call(b.client.peers.log, b.unknown)
    assert (page.subject, page.limit, page.offset, page.returned, page.entries) == (
        b.unknown,
        50,
        0,
        0,
        [],
    )


async def test_malformed_id_is_bad_peer_id_only_where_the_id_is_parsed(backend: Backend) -> None:
    b = backend
    bad = envelope(
        400, "bad_peer_id", "failed to parse peer ID: invalid cid: selected encoding not supported"
    )
    b.expect("GET", f"/v1/peers/{BAD_ID}", bad)
    b.expect("GET", f"/v1/peers/{BAD_ID}/reputation", bad)
    b.expect("GET", f"/v1/peers/{BAD_ID}/log", bad, limit="50", offset="0")
    b.expect("POST", f"/v1/peers/{BAD_ID}/comments/self", bad)
    unknown_hash = "ab" * 32
    b.expect(
        "GET",
        f"/v1/peers/{BAD_ID}/proof",
        envelope(404, "entry_not_found", f"ledger: entry not in local log: hash={unknown_hash}"),
        entry=unknown_hash,
    )
    missing_cid = cid_hex("never posted")
    b.expect(
        "GET",
        f"/v1/peers/{BAD_ID}/comments/{missing_cid}",
        envelope(404, "comment_not_found", "comment body not found for this CID"),
    )

    for method, args in (
        (b.client.peers.get, ()),
        (b.client.peers.reputation, ()),
        (b.client.peers.log, ()),
        (b.client.peers.comment, ("hello",)),
    ):
        with pytest.raises(InvalidRequestError) as err:
            await call(method, BAD_ID, *args)
        assert (err.value.status, err.value.code) == (400, "bad_peer_id")
    # /proof and the body routes never look at the id segment.
    with pytest.raises(LedgerNotFoundError) as err:
        await call(b.client.peers.proof, BAD_ID, unknown_hash)
    assert (err.value.status, err.value.code) == (404, "entry_not_found")
    with pytest.raises(LedgerNotFoundError) as err:
        await call(b.client.peers.comment_body, BAD_ID, missing_cid)
    assert err.value.code == "comment_not_found"


async def test_comment_shows_in_log_summary_reputation_and_proves(backend: Backend) -> None:
    b = backend
    # Go side of the exchange: the comment's and the rating's leaf hashes, a 2-leaf tree.
    comment_hash, rating_hash = sha(b"go:comment"), sha(b"go:rating")
    root = node(comment_hash, rating_hash)
    b.expect(
        "POST",
        f"/v1/peers/{b.worker}/comments/self",
        (201, go_json({"cid": cid_hex(TEXT), "ledger_hash": comment_hash.hex()})),
    )
    rating_entry = {
        "received_at": "2026-12-02T03:31:37.86332478Z",
        "kind": "Rating",
        "entry_hash": rating_hash.hex(),
        "rater_peer_id": b.gateway_id,
        "dimension": "honesty",
        "score": -1,
        "context": "interactive",
        "rater_status": "verified",
        "rater_honesty_score": 1,
    }
    comment_entry = _comment_entry(b, comment_hash, TEXT, "2026-12-02T03:31:37.860303772Z")
    b.expect(
        "GET",
        f"/v1/peers/{b.worker}/log",
        (200, _log(b.worker, [rating_entry, comment_entry])),
        limit="50",
        offset="0",
    )
    b.expect("GET", f"/v1/peers/{b.worker}/comments/{cid_hex(TEXT)}", (200, TEXT.encode()))
    b.expect(
        "GET",
        f"/v1/peers/{b.worker}/comments/{cid_hex(TEXT)}.json",
        (200, go_json({"cid": cid_hex(TEXT), "body": TEXT, "language": "en"})),
    )
    summary = _summary(
        b.worker,
        agent_name="w",
        author="agentfm",
        online=True,
        last_seen="2026-12-02T03:31:37.606103552Z",
    )
    summary.update(
        {
            "honesty_score": -0.85,
            "is_equivocator": False,
            "dispatch_allowed": True,
            "entries_count": 2,
            "last_entry_at": "2026-12-02T03:31:37.86332478Z",
            "advertised_capability": "w",
            "rater_summary": {"verified_raters_count": 1, "unverified_raters_count": 0},
        }
    )
    b.expect("GET", f"/v1/peers/{b.worker}", (200, go_json(summary)))
    rep = {
        "peer_id": b.worker,
        "scores": {"honesty": -0.85},
        "rating_count": 1,
        "last_updated": "2026-12-02T03:31:37Z",
        "is_equivocator": False,
        "agent_capability": "w",
    }
    b.expect("GET", f"/v1/peers/{b.worker}/reputation", (200, go_json(rep)))
    head = {
        "tree_size": 2,
        "root_hash": root.hex(),
        "witness_count": 0,
        "signed_at": "2026-12-02T03:31:37Z",
    }
    for position, (leaf, sibling) in enumerate(
        ((comment_hash, rating_hash), (rating_hash, comment_hash))
    ):
        proof = {
            "entry_hash": leaf.hex(),
            "position": position,
            "audit_path": [sibling.hex()],
            "head": head,
        }
        for _ in range(2):
            b.expect("GET", f"/v1/peers/{b.worker}/proof", (200, go_json(proof)), entry=leaf.hex())

    receipt = await call(b.client.peers.comment, b.worker, TEXT, rating=-1.0)
    assert receipt.cid == cid_hex(TEXT)
    assert len(receipt.ledger_hash) == 64
    page = await call(b.client.peers.log, b.worker)
    assert page.returned == 2
    rating, comment = page.entries
    assert (rating.kind, rating.dimension, rating.score, rating.context) == (
        "Rating",
        "honesty",
        -1.0,
        "interactive",
    )
    assert (rating.rater_peer_id, rating.rater_status, rating.rater_honesty_score) == (
        b.gateway_id,
        "verified",
        1.0,
    )
    assert (comment.kind, comment.entry_hash, comment.text_cid, comment.language) == (
        "Comment",
        receipt.ledger_hash,
        receipt.cid,
        "en",
    )
    assert await call(b.client.peers.comment_body, b.worker, receipt.cid) == TEXT
    as_json = await call(b.client.peers.comment_body_json, b.worker, receipt.cid)
    assert (as_json.body, as_json.language, as_json.cid) == (TEXT, "en", receipt.cid)

    got = await call(b.client.peers.get, b.worker)
    assert got.entries_count == 2
    assert got.online
    assert got.agent_name == "w"
    assert got.honesty_score == pytest.approx(-0.85)
    assert got.dispatch_allowed  # below the floor, but only equivocators are flagged
    assert got.rater_summary.verified_raters_count == 1
    score = await call(b.client.peers.reputation, b.worker)
    assert score.rating_count == 1
    assert score.honesty == pytest.approx(-0.85)

    leaves = {}
    for entry in page.entries:
        proof = await call(b.client.peers.proof, b.worker, entry.entry_hash)
        assert proof.verify(entry.entry_hash)
        assert await call(b.client.peers.verify, b.worker, entry.entry_hash)
        assert proof.head.tree_size == 2
        assert proof.head.witness_count == 0
        leaves[proof.position] = bytes.fromhex(entry.entry_hash)
        # A tampered entry, or a tampered path, does not verify.
        flipped = bytes([leaves[proof.position][0] ^ 1]) + leaves[proof.position][1:]
        assert not proof.verify(flipped.hex())
        bent = proof.model_copy(update={"audit_path": ["00" * 32]})
        assert not bent.verify(entry.entry_hash)
        assert not proof.model_copy(update={"position": 1 - proof.position}).verify(
            entry.entry_hash
        )
    assert proof.head.root_hash == node(leaves[0], leaves[1]).hex()


async def test_log_paging_bounds(backend: Backend) -> None:
    b = backend
    texts = ["first", "second", "third"]
    hashes = [sha(t.encode()) for t in texts]
    for text, digest in zip(texts, hashes, strict=False):
        b.expect(
            "POST",
            f"/v1/peers/{b.worker}/comments/self",
            (201, go_json({"cid": cid_hex(text), "ledger_hash": digest.hex()})),
        )
    newest = [
        _comment_entry(b, d, t, f"2026-12-02T03:31:3{i}Z")
        for i, (t, d) in reversed(list(enumerate(zip(texts, hashes, strict=False))))
    ]
    path = f"/v1/peers/{b.worker}/log"
    b.expect("GET", path, (200, _log(b.worker, newest, 50, 0)), limit="0", offset="0")
    b.expect("GET", path, (200, _log(b.worker, newest, 500, 0)), limit="501", offset="0")
    b.expect("GET", path, (200, _log(b.worker, newest, 50, 0)), limit="-1", offset="0")
    b.expect("GET", path, (200, _log(b.worker, newest[1:2], 1, 1)), limit="1", offset="1")
    b.expect("GET", path, (200, _log(b.worker, [], 50, 3)), limit="50", offset="10000000")
    b.expect("GET", path, (200, _log(b.worker, newest[:2], 2, 0)), limit="2", offset="0")
    b.expect("GET", path, (200, _log(b.worker, newest[2:], 2, 2)), limit="2", offset="2")

    receipts = [await call(b.client.peers.comment, b.worker, text) for text in texts]
    order = [r.ledger_hash for r in reversed(receipts)]
    page = await call(b.client.peers.log, b.worker, limit=0)
    assert (page.limit, page.returned) == (50, 3)
    assert [e.entry_hash for e in page.entries] == order
    assert (await call(b.client.peers.log, b.worker, limit=501)).limit == 500
    assert (await call(b.client.peers.log, b.worker, limit=-1)).limit == 50
    one = await call(b.client.peers.log, b.worker, limit=1, offset=1)
    assert [e.entry_hash for e in one.entries] == order[1:2]
    assert one.next_offset == 2
    past = await call(b.client.peers.log, b.worker, offset=10_000_000)
    assert (past.offset, past.returned, past.entries) == (3, 0, [])
    walked = await collect(b.client.peers.iter_log(b.worker, page_size=2))
    assert [e.entry_hash for e in walked] == order


async def test_comment_errors_map_to_typed_errors(backend: Backend) -> None:
    b = backend
    peers = f"/v1/peers/{b.worker}"
    b.expect("POST", f"{peers}/comments/self", envelope(400, "missing_field", "text is required"))
    b.expect(
        "POST",
        f"{peers}/comments/self",
        envelope(400, "bad_rating", "rating must be a finite number in [-1.0, +1.0]"),
    )
    b.expect(
        "POST",
        f"{peers}/comments/self",
        envelope(400, "body_too_large", "text exceeds 10240 bytes"),
    )
    at_limit = "a" * 10240
    b.expect(
        "POST",
        f"{peers}/comments/self",
        (201, go_json({"cid": cid_hex(at_limit), "ledger_hash": sha(b"x").hex()})),
    )
    b.expect(
        "GET",
        f"{peers}/comments/abc123",
        envelope(
            400,
            "bad_cid",
            "CID is not a valid multihash: length greater than remaining number of bytes in buffer",
        ),
    )
    b.expect(
        "GET",
        f"{peers}/proof",
        envelope(400, "bad_request", "entry must be a 64-char hex string"),
        entry="abc",
    )

    for text, rating, code in (
        ("", None, "missing_field"),
        ("x", 1.5, "bad_rating"),
        ("é" * 5121, None, "body_too_large"),
    ):
        with pytest.raises(InvalidRequestError) as err:
            await call(b.client.peers.comment, b.worker, text, rating=rating)
        assert (err.value.status, err.value.code) == (400, code)
    receipt = await call(b.client.peers.comment, b.worker, at_limit)
    assert receipt.cid == cid_hex(at_limit)
    with pytest.raises(InvalidRequestError) as err:
        await call(b.client.peers.comment_body, b.worker, "abc123")
    assert err.value.code == "bad_cid"
    with pytest.raises(InvalidRequestError) as err:
        await call(b.client.peers.proof, b.worker, "abc")
    assert err.value.code == "bad_request"


async def test_caller_signed_comment(backend: Backend) -> None:
    b = backend
    path = f"/v1/peers/{b.worker}/comments"
    digest = sha(b"go:signed")
    b.expect("POST", path, (201, go_json({"cid": cid_hex("signed"), "ledger_hash": digest.hex()})))
    b.expect(
        "POST",
        path,
        envelope(
            403,
            "non_self_submitter",
            "rater_peer_id must be this boss's peer ID (self-submission only)",
        ),
    )
    b.expect("POST", path, envelope(401, "bad_signature", "signature mismatch"))
    b.expect(
        "GET",
        f"/v1/peers/{b.worker}/log",
        (200, _log(b.worker, [_comment_entry(b, digest, "signed", "2026-12-02T03:31:37Z")])),
        limit="50",
        offset="0",
    )

    receipt = await call(
        b.client.peers.comment_signed,
        b.worker,
        "signed",
        rater_peer_id=b.gateway_id,
        signer=b.gateway_key.sign,
    )
    assert receipt.cid == cid_hex("signed")
    with pytest.raises(NotSelfSubmitterError) as refused:
        await call(
            b.client.peers.comment_signed,
            b.worker,
            "signed",
            rater_peer_id=b.other_id,
            signer=b.other_key.sign,
        )
    assert refused.value.status == 403
    with pytest.raises(SignatureRejectedError) as forged:
        await call(
            b.client.peers.comment_signed,
            b.worker,
            "signed",
            rater_peer_id=b.gateway_id,
            signer=b.other_key.sign,
        )
    assert forged.value.status == 401
    page = await call(b.client.peers.log, b.worker)
    assert [e.entry_hash for e in page.entries] == [receipt.ledger_hash]


def _answer(answer: tuple[int, bytes]) -> httpx.Response:
    return httpx.Response(answer[0], content=answer[1], headers=JSON_CT)


@pytest.fixture(params=["mesh", "go"])
async def disabled(
    request: pytest.FixtureRequest, flavour: str
) -> AsyncIterator[tuple[str, Any, str]]:
    """A gateway whose ledger is disabled: (backend name, client, a live worker id)."""
    if request.param == "mesh":
        worker = WorkerConfig("w", "e", CallableAgent(lambda p, c: p + "\n"), seed="peers:w")
        with EmbeddedMesh([worker], api_keys=[], ledger=False) as mesh:
            client = _client(flavour, mesh.url)
            yield "mesh", client, mesh.peer_id("w")
            await _close(client)
        return
    peer = peer_id_from_seed(seed_from_text("peers-test:go-worker"))
    unavailable = envelope(503, "ledger_unavailable", "ledger not wired on this boss")
    no_comments = envelope(503, "comments_unavailable", "comments store not wired on this boss")
    workers = {
        "success": True,
        "agents": [
            {
                "peer_id": peer,
                "author": "agentfm",
                "name": "w",
                "status": "AVAILABLE",
                "hardware": "e (CPU: 2 Cores)",
                "honesty_score": 0,
                "is_equivocator": False,
                "dispatch_allowed": True,
                "online": True,
            }
        ],
        "online_count": 1,
        "offline_count": 0,
    }
    client = _client(flavour, GW)
    with respx.mock(base_url=GW) as router:
        router.get(f"/v1/peers/{peer}").mock(return_value=_answer(unavailable))
        for suffix in ("/reputation", "/log", "/proof", "/comments/self"):
            router.route(path=f"/v1/peers/{peer}{suffix}").mock(return_value=_answer(unavailable))
        router.post(f"/v1/peers/{peer}/comments").mock(
            return_value=_answer(
                envelope(501, "not_implemented", "comment submission lands in P4-3")
            )
        )
        router.get(path__startswith=f"/v1/peers/{peer}/comments/1220").mock(
            return_value=_answer(no_comments)
        )
        router.get("/api/workers").respond(200, content=go_json(workers), headers=JSON_CT)
        yield "go", client, peer
    await _close(client)


async def test_disabled_ledger_answers_as_go(disabled: tuple[str, Any, str]) -> None:
    _, client, peer = disabled
    for method, args in (
        (client.peers.get, ()),
        (client.peers.reputation, ()),
        (client.peers.log, ()),
        (client.peers.proof, ("ab" * 32,)),
        (client.peers.comment, ("hi",)),
    ):
        with pytest.raises(LedgerUnavailableError) as err:
            await call(method, peer, *args)
        assert (err.value.status, err.value.code) == (503, "ledger_unavailable")
    key, gateway = _key("peers-test:go-gateway")
    with pytest.raises(LedgerUnavailableError) as err:
        await call(client.peers.comment_signed, peer, "hi", rater_peer_id=gateway, signer=key.sign)
    assert (err.value.status, err.value.code) == (501, "not_implemented")
    with pytest.raises(LedgerUnavailableError) as err:
        await call(client.peers.comment_body, peer, cid_hex("hi"))
    assert (err.value.status, err.value.code) == (503, "comments_unavailable")
    [listed] = await call(client.peers.list)
    assert (listed.honesty_score, listed.dispatch_allowed, listed.is_equivocator) == (
        0,
        True,
        False,
    )


async def test_request_shapes_on_the_wire(flavour: str) -> None:
    """What the SDK sends: feedback fields, the self-comment body, the signed comment."""
    key, gateway = _key("peers-test:go-gateway")
    worker = peer_id_from_seed(seed_from_text("peers-test:go-worker"))
    client = _client(flavour, GW)
    with respx.mock(base_url=GW) as router:
        execute = router.post("/api/execute").respond(
            200, content=b"ok\n\n[AGENTFM: NO_FILES]\n", headers={"content-type": "text/plain"}
        )
        receipt = go_json({"cid": cid_hex("t"), "ledger_hash": "ab" * 32})
        self_route = router.post(f"/v1/peers/{worker}/comments/self").mock(
            return_value=httpx.Response(201, content=receipt, headers=JSON_CT)
        )
        signed_route = router.post(f"/v1/peers/{worker}/comments").mock(
            return_value=httpx.Response(201, content=receipt, headers=JSON_CT)
        )
        result = await call(
            client.tasks.run, worker_id=worker, prompt="p", feedback="nice", feedback_rating=5
        )
        assert result.text == "ok\n"
        sent = json.loads(execute.calls[0].request.content)
        # Passed through as given: the gateway stores feedback_rating unvalidated.
        assert (sent["feedback"], sent["feedback_rating"]) == ("nice", 5)
        await call(client.tasks.run, worker_id=worker, prompt="p")
        assert "feedback" not in json.loads(execute.calls[1].request.content)

        await call(client.peers.comment, worker, "t", rating=0.5, attached_rating_hash="cd" * 32)
        assert json.loads(self_route.calls[0].request.content) == {
            "text": "t",
            "language": "en",
            "rating": 0.5,
            "attached_rating_hash": "cd" * 32,
        }
        await call(client.peers.comment, worker, "t")
        assert "rating" not in json.loads(self_route.calls[1].request.content)
        await call(
            client.peers.comment_signed,
            worker,
            "t",
            rater_peer_id=gateway,
            signer=key.sign,
            timestamp_unix_ns=1234,
        )
        body = json.loads(signed_route.calls[0].request.content)
        assert body["timestamp_unix_ns"] == 1234
        assert body["rater_peer_id"] == gateway
        signature = base64.b64decode(body["signature"], validate=True)
        # The signature is over SHA-256 of the canonical Comment (no prev_hash).
        digest = comment_digest(parse_peer_id(gateway), parse_peer_id(worker), "t", "en", b"", 1234)
        key.public_key().verify(signature, digest)
    await _close(client)
