"""libp2p-style worker identities: Ed25519 keys and their ``12D3KooW…`` peer ids."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

if TYPE_CHECKING:
    from pathlib import Path

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# libp2p's protobuf framing: field 1 (KeyType, varint) = 1 for Ed25519, field 2 (Data, bytes).
_PUBKEY_PREFIX = b"\x08\x01\x12\x20"
_PRIVKEY_PREFIX = b"\x08\x01\x12\x40"


def b58encode(data: bytes) -> str:
    """Encode ``data`` in base58btc, keeping leading zero bytes as ``1``."""
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58_ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def peer_id_from_public_key(raw_public_key: bytes) -> str:
    """Derive the libp2p peer id of a raw 32-byte Ed25519 public key.

    Small keys are embedded with the identity multihash (code 0x00), which is why every
    Ed25519 peer id starts with ``12D3KooW``.
    """
    encoded = _PUBKEY_PREFIX + raw_public_key
    return b58encode(b"\x00" + bytes([len(encoded)]) + encoded)


def _key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def seed_from_text(seed: str | bytes) -> bytes:
    """Stretch any seed value into the 32 bytes an Ed25519 key needs."""
    data = seed.encode() if isinstance(seed, str) else seed
    return hashlib.sha256(b"agentfm.mesh/peer-seed:" + data).digest()


def load_or_create_key(path: Path) -> bytes:
    """Return the 32-byte Ed25519 seed stored at ``path``, creating the file when missing.

    The file holds the libp2p protobuf encoding of the private key (seed followed by the
    public key), so the same file can be handed to a libp2p implementation.
    """
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        seed = os.urandom(32)
        key = _key_from_seed(seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_PRIVKEY_PREFIX + seed + _public_bytes(key))
        os.replace(tmp, path)
        return seed
    if len(blob) != 68 or not blob.startswith(_PRIVKEY_PREFIX):
        raise ValueError(f"{path} is not a libp2p Ed25519 private key")
    return blob[4:36]


def peer_id_from_seed(seed: bytes) -> str:
    """Peer id of the Ed25519 key whose 32-byte private seed is ``seed``."""
    return peer_id_from_public_key(_public_bytes(_key_from_seed(seed)))
