"""Canonical bytes of the ledger's entries (protobuf ``agentfm.ledger.v1``), encoded by hand.

Deterministic protobuf: fields in ascending number order, proto3 defaults omitted (empty
bytes and strings, zero integers, a +0.0 double). The Go gateway signs SHA-256 of these
bytes and hashes ``0x00 ‖ bytes`` into its Merkle tree, so both the SDK (signing a
caller-signed comment) and the embedded mesh (its own log) build them here. Pure, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from agentfm._validation import _b58decode as _b58decode_or_none

__all__ = [
    "comment_bytes",
    "comment_digest",
    "field_bytes",
    "field_varint",
    "parse_peer_id",
    "rating_bytes",
]


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative int64 values as their 64-bit two's complement."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def field_bytes(number: int, value: bytes) -> bytes:
    """A length-delimited field, absent when empty."""
    if not value:
        return b""
    return varint(number << 3 | 2) + varint(len(value)) + value


def field_varint(number: int, value: int) -> bytes:
    """A varint field, absent when zero."""
    return varint(number << 3) + varint(value) if value else b""


def field_double(number: int, value: float) -> bytes:
    """A fixed64 double field, absent for +0.0 (its bits are all zero)."""
    packed = struct.pack("<d", value)
    return b"" if packed == bytes(8) else varint(number << 3 | 1) + packed


def text_cid(body: bytes) -> bytes:
    """The 34-byte CID of a comment body: multihash ``sha2-256`` (``12 20`` + digest)."""
    return b"\x12\x20" + hashlib.sha256(body).digest()


def rating_bytes(
    rater: bytes,
    subject: bytes,
    dimension: str,
    score: float,
    context: str,
    timestamp_ns: int,
    prev_hash: bytes,
) -> bytes:
    """A Rating without its signature (fields 1-7)."""
    return b"".join(
        (
            field_bytes(1, rater),
            field_bytes(2, subject),
            field_bytes(3, dimension.encode()),
            field_double(4, score),
            field_bytes(5, context.encode()),
            field_varint(6, timestamp_ns),
            field_bytes(7, prev_hash),
        )
    )


def comment_bytes(
    rater: bytes,
    subject: bytes,
    cid: bytes,
    language: str,
    attached: bytes,
    timestamp_ns: int,
    prev_hash: bytes = b"",
) -> bytes:
    """A Comment without its signature (fields 1-7; no ``prev_hash`` when caller-signed)."""
    return b"".join(
        (
            field_bytes(1, rater),
            field_bytes(2, subject),
            field_bytes(3, cid),
            field_bytes(4, language.encode()),
            field_bytes(5, attached),
            field_varint(6, timestamp_ns),
            field_bytes(7, prev_hash),
        )
    )


def comment_digest(
    rater: bytes, subject: bytes, text: str, language: str, attached: bytes, timestamp_ns: int
) -> bytes:
    """The 32 bytes a caller signs for ``POST /v1/peers/{id}/comments``."""
    canonical = comment_bytes(
        rater, subject, text_cid(text.encode()), language, attached, timestamp_ns
    )
    return hashlib.sha256(canonical).digest()


# -- peer ids -----------------------------------------------------------------------------


def _b58decode(text: str) -> bytes:
    raw = _b58decode_or_none(text)
    if raw is None:
        raise ValueError("invalid base58 text")
    return raw


def read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a varint at ``pos``; return it and the position after it (ValueError if cut)."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _check_multihash(raw: bytes) -> bytes:
    code, pos = read_uvarint(raw, 0)
    length, pos = read_uvarint(raw, pos)
    if len(raw) - pos != length:
        raise ValueError("multihash length does not match its digest")
    if code == 0x00 and length > 128:
        raise ValueError("identity multihash too long")
    if code not in (0x00, 0x12):
        raise ValueError(f"unsupported multihash code {code:#x}")
    return raw


def parse_peer_id(text: str) -> bytes:
    """The byte form of a peer id given as base58 (``12D3KooW…``/``Qm…``) or CIDv1.

    Raises:
        ValueError: not a peer id.
    """
    if not text:
        raise ValueError("empty peer id")
    if text.startswith(("Qm", "1")):
        return _check_multihash(_b58decode(text))
    if text[0] == "b":
        body = text[1:].upper()
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
        version, pos = read_uvarint(raw, 0)
        codec, pos = read_uvarint(raw, pos)
        if version != 1 or codec != 0x72:
            raise ValueError("not a libp2p-key CIDv1")
        return _check_multihash(raw[pos:])
    if text[0] == "z":
        return parse_peer_id_cid_b58(text[1:])
    raise ValueError(f"peer id {text!r}: unknown encoding")


def parse_peer_id_cid_b58(text: str) -> bytes:
    """A base58btc CIDv1 peer id (the part after the ``z`` multibase prefix)."""
    raw = _b58decode(text)
    version, pos = read_uvarint(raw, 0)
    codec, pos = read_uvarint(raw, pos)
    if version != 1 or codec != 0x72:
        raise ValueError("not a libp2p-key CIDv1")
    return _check_multihash(raw[pos:])
