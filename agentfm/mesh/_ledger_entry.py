"""The ledger's entries: the two protobuf messages of ``agentfm.ledger.v1`` (Rating, Comment).

They are encoded by hand in protobuf's deterministic form so their bytes, hashes and
signatures match the Go gateway's (see `agentfm.mesh._ledger` for how they are stored and
signed). Comment bodies are named by CID: ``1220`` + SHA-256 of the body.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agentfm._entries import (
    comment_bytes,
    field_bytes,
    rating_bytes,
    read_uvarint,
    text_cid,
)
from agentfm._merkle import leaf_hash
from agentfm.mesh._peerid import b58encode

RATING = 1
COMMENT = 2
KIND_NAMES = {RATING: "Rating", COMMENT: "Comment"}
ZERO_HASH = b"\x00" * 32
MAX_COMMENT_BYTES = 10240
ED25519_ID_PREFIX = b"\x00\x24\x08\x01\x12\x20"


# -- peer ids ---------------------------------------------------------------------------------


def peer_id_text(raw: bytes) -> str:
    """The base58 string of a peer id's byte form."""
    return b58encode(raw)


def public_key_of(raw_id: bytes) -> Ed25519PublicKey:
    """Recover the Ed25519 key embedded in an identity-multihash peer id.

    Raises:
        ValueError: the id does not embed an Ed25519 key.
    """
    if len(raw_id) != 38 or not raw_id.startswith(ED25519_ID_PREFIX):
        raise ValueError("peer id does not embed an Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw_id[6:])


# -- protobuf encoding: agentfm._entries ---------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One stored entry of the own log."""

    idx: int
    kind: int
    rater: bytes
    subject: bytes
    timestamp_ns: int
    prev_hash: bytes
    signature: bytes
    inserted_at_ns: int
    dimension: str = ""
    score: float = 0.0
    context: str = ""
    text_cid: bytes = b""
    language: str = ""
    attached: bytes = b""

    @classmethod
    def draft_comment(
        cls,
        rater: bytes,
        subject: bytes,
        cid: bytes,
        language: str,
        attached: bytes,
        timestamp_ns: int,
    ) -> Entry:
        """A Comment to sign and append (``rater`` empty: authored by the gateway)."""
        return cls(
            idx=0,
            kind=COMMENT,
            rater=rater,
            subject=subject,
            timestamp_ns=timestamp_ns,
            prev_hash=b"",
            signature=b"",
            inserted_at_ns=0,
            text_cid=cid,
            language=language,
            attached=attached,
        )

    def canonical(self, *, with_prev: bool = True) -> bytes:
        """The inner message's deterministic bytes, signature cleared."""
        return canonical_bytes(self, with_prev=with_prev)

    @property
    def hash(self) -> bytes:
        """The leaf hash (``entry_hash``)."""
        return leaf_hash(self.canonical())


def canonical_bytes(entry: Entry, *, with_prev: bool = True) -> bytes:
    """Protobuf bytes of ``entry``'s Rating or Comment without its signature."""
    prev = entry.prev_hash if with_prev else b""
    if entry.kind == RATING:
        return rating_bytes(
            entry.rater,
            entry.subject,
            entry.dimension,
            entry.score,
            entry.context,
            entry.timestamp_ns,
            prev,
        )
    return comment_bytes(
        entry.rater,
        entry.subject,
        entry.text_cid,
        entry.language,
        entry.attached,
        entry.timestamp_ns,
        prev,
    )


def signed_payload(entry: Entry) -> bytes:
    inner = canonical_bytes(entry) + field_bytes(8, entry.signature)
    return field_bytes(entry.kind, inner)


def parse_fields(data: bytes) -> dict[int, bytes | int]:
    out: dict[int, bytes | int] = {}
    pos = 0
    while pos < len(data):
        tag, pos = read_uvarint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_uvarint(data, pos)
            out[number] = value
        elif wire == 1:
            out[number] = data[pos : pos + 8]
            pos += 8
        elif wire == 2:
            length, pos = read_uvarint(data, pos)
            out[number] = data[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def decode_payload(idx: int, payload: bytes, inserted_at: int) -> Entry:
    outer = parse_fields(payload)
    kind = RATING if RATING in outer else COMMENT
    inner = outer[kind]
    assert isinstance(inner, bytes)
    f = parse_fields(inner)

    def raw(n: int) -> bytes:
        value = f.get(n, b"")
        return value if isinstance(value, bytes) else b""

    def num(n: int) -> int:
        value = f.get(n, 0)
        value = value if isinstance(value, int) else 0
        return value - (1 << 64) if value >= 1 << 63 else value

    common = {
        "idx": idx,
        "kind": kind,
        "rater": raw(1),
        "subject": raw(2),
        "timestamp_ns": num(6),
        "prev_hash": raw(7),
        "signature": raw(8),
        "inserted_at_ns": inserted_at,
    }
    if kind == RATING:
        score = struct.unpack("<d", raw(4))[0] if raw(4) else 0.0
        return Entry(
            **common,  # type: ignore[arg-type]
            dimension=raw(3).decode(),
            score=score,
            context=raw(5).decode(),
        )
    return Entry(
        **common,  # type: ignore[arg-type]
        text_cid=raw(3),
        language=raw(4).decode(),
        attached=raw(5),
    )


# -- comment bodies -----------------------------------------------------------------------------


cid_of = text_cid


def parse_cid(text: str) -> bytes:
    """Decode a hex CID as the gateway does (either case; 34 bytes; ``1220`` prefix).

    Raises:
        ValueError: not a valid CID.
    """
    if len(text) % 2:
        raise ValueError("odd length hex")
    raw = bytes.fromhex(text)
    if len(raw) != 34:
        raise ValueError(f"want 34 bytes, got {len(raw)}")
    if raw[:2] != b"\x12\x20":
        raise ValueError("not a sha2-256 multihash")
    return raw
