"""Pure pieces of the ledger: RFC 6962 proofs, canonical entry bytes, the trust filter."""

from __future__ import annotations

import hashlib

import pytest

from agentfm import InvalidRequestError, UntrustedPeersError, WorkerProfile
from agentfm._entries import comment_bytes, comment_digest, parse_peer_id, rating_bytes, text_cid
from agentfm._merkle import MerkleFrontier, inclusion_path, leaf_hash, merkle_root, verify_inclusion
from agentfm._trust import passes_trust, require_min_honesty, trusted_peer_ids
from agentfm.mesh._peerid import peer_id_from_seed, seed_from_text

PEER = peer_id_from_seed(seed_from_text("unit:peer"))
OTHER = peer_id_from_seed(seed_from_text("unit:other"))


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_small_trees_match_rfc6962_by_hand() -> None:
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert merkle_root([]) == _h(b"")
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == _h(b"\x01" + a + b)
    # Three leaves split at 2: root = H(H(a,b), c).
    assert merkle_root([a, b, c]) == _h(b"\x01" + _h(b"\x01" + a + b) + c)
    assert inclusion_path([a, b, c], 2) == [_h(b"\x01" + a + b)]
    assert inclusion_path([a, b, c], 0) == [b, c]


@pytest.mark.parametrize("size", range(1, 20))
def test_every_leaf_proves_and_nothing_else_does(size: int) -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(size)]
    root = merkle_root(leaves)
    for index, leaf in enumerate(leaves):
        path = inclusion_path(leaves, index)
        assert verify_inclusion(leaf, index, size, path, root)
        assert not verify_inclusion(leaf_hash(b"forged"), index, size, path, root)
        if size > 1:
            assert not verify_inclusion(leaf, (index + 1) % size, size, path, root)
            assert not verify_inclusion(leaf, index, size, path[:-1], root)
    assert not verify_inclusion(leaves[0], 0, 0, [], root)


def test_frontier_root_equals_the_recursive_root() -> None:
    frontier = MerkleFrontier()
    assert frontier.root() == merkle_root([])
    leaves = []
    for i in range(70):
        leaves.append(leaf_hash(i.to_bytes(2, "big")))
        frontier.append(leaves[-1])
        assert frontier.root() == merkle_root(leaves)


def test_comment_bytes_follow_the_documented_layout() -> None:
    rater, subject = parse_peer_id(PEER), parse_peer_id(OTHER)
    assert len(rater) == 38
    assert rater[:6] == b"\x00\x24\x08\x01\x12\x20"
    cid = text_cid(b"hi")
    raw = comment_bytes(rater, subject, cid, "en", b"", 300, b"\x00" * 32)
    expected = (
        b"\x0a\x26" + rater + b"\x12\x26" + subject + b"\x1a\x22" + cid
        + b"\x22\x02en" + b"\x30\xac\x02" + b"\x3a\x20" + b"\x00" * 32
    )  # fmt: skip
    assert raw == expected
    # Caller-signed: no prev_hash, and the digest is SHA-256 of those bytes.
    signed = comment_bytes(rater, subject, cid, "", b"", 300)
    assert not signed.endswith(b"\x00" * 32)
    assert comment_digest(rater, subject, "hi", "", b"", 300) == _h(signed)


def test_rating_bytes_omit_a_zero_score_but_keep_negative_zero() -> None:
    rater = parse_peer_id(PEER)
    zero = rating_bytes(rater, rater, "honesty", 0.0, "", 1, b"")
    assert b"\x21" not in zero[80:]
    half = rating_bytes(rater, rater, "honesty", 0.5, "", 1, b"")
    assert b"\x21\x00\x00\x00\x00\x00\x00\xe0\x3f" in half


@pytest.mark.parametrize("text", ["", "12D3KooWA", "Qm", "bafy-not-base32!", "hello"])
def test_bad_peer_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_peer_id(text)


def _worker(peer: str, score: float | None, allowed: bool = True) -> WorkerProfile:
    return WorkerProfile(peer_id=peer, honesty_score=score, dispatch_allowed=allowed)  # type: ignore[arg-type]


def test_trust_filter() -> None:
    assert passes_trust(_worker(PEER, None))
    assert not passes_trust(_worker(PEER, 1.0, allowed=False))
    assert passes_trust(_worker(PEER, -0.5), -0.5)  # at the minimum is enough
    assert not passes_trust(_worker(PEER, -0.6), -0.5)
    assert not passes_trust(_worker(PEER, None), 0.0)
    workers = [_worker(PEER, 0.4), _worker(OTHER, -0.9)]
    assert trusted_peer_ids([PEER, OTHER, PEER], workers, 0.0) == [PEER, PEER]
    unknown = peer_id_from_seed(seed_from_text("unit:unknown"))
    assert trusted_peer_ids([unknown, OTHER], workers, None) == [unknown, OTHER]
    assert trusted_peer_ids([unknown, PEER], workers, 0.0) == [PEER]
    with pytest.raises(UntrustedPeersError):
        trusted_peer_ids([OTHER], workers, 0.0)
    with pytest.raises(UntrustedPeersError):
        trusted_peer_ids([PEER], None, 0.0)
    assert trusted_peer_ids([PEER], None, None) == [PEER]
    with pytest.raises(InvalidRequestError):
        require_min_honesty(float("nan"))
