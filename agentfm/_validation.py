"""Client-side argument checks, done before any request is sent."""

from __future__ import annotations

import functools
import math
import os
from typing import TYPE_CHECKING

from agentfm._constants import TASK_ID_PATTERN
from agentfm.exceptions import InvalidRequestError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "is_peer_id",
    "mint_task_id",
    "pick_peer",
    "require_peer_id",
    "require_positive_int",
    "require_prompt",
    "require_task_id",
    "require_timeout",
]

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_SHA2_256 = 0x12
_IDENTITY = 0x00


def _b58decode(text: str) -> bytes | None:
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            return None
        number = number * 58 + digit
    pad = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * pad + body


@functools.lru_cache(maxsize=4096)
def _is_peer_id_text(value: str) -> bool:
    if not 40 <= len(value) <= 128:
        return False
    raw = _b58decode(value)
    if raw is None or len(raw) < 3:
        return False
    code, length, digest = raw[0], raw[1], raw[2:]
    if code == _SHA2_256:
        return length == 32 and len(digest) == 32
    if code == _IDENTITY:
        return length == len(digest) and 0 < length <= 42
    return False


def is_peer_id(value: object) -> bool:
    """Whether ``value`` is a base58 libp2p peer id (``12D3KooW…``, ``Qm…``, ``16Uiu2…``).

    A peer id is a multihash of the public key: an identity multihash for small keys
    (Ed25519, secp256k1) or a SHA2-256 one (RSA).
    """
    return isinstance(value, str) and _is_peer_id_text(value)


def require_peer_id(value: object, *, name: str = "peer_id") -> str:
    """Return ``value`` if it is a non-empty string, else raise `InvalidRequestError`.

    The gateway looks the id up in its worker table before anything else and answers
    404 "Worker not found or offline" for an id it does not know, so any string is passed
    on (0.3.0 did the same; test suites use short placeholder ids). `is_peer_id` is only
    used to decide whether to warn about routing.
    """
    if not isinstance(value, str):
        raise InvalidRequestError(
            f"{name} must be a string, got {type(value).__name__}", code="invalid_peer_id"
        )
    if not value:
        raise InvalidRequestError(f"{name} must not be empty", code="worker_id_required")
    return value


def pick_peer(worker_id: str | None, peer_id: str | None) -> str:
    """Resolve the ``worker_id``/``peer_id`` alias pair: exactly one must be given."""
    if worker_id is not None and peer_id is not None and worker_id != peer_id:
        raise InvalidRequestError(
            "pass worker_id or peer_id, not both", code="invalid_request_error"
        )
    chosen = worker_id if worker_id is not None else peer_id
    if chosen is None:
        raise InvalidRequestError("worker_id (or peer_id) is required", code="worker_id_required")
    return require_peer_id(chosen, name="worker_id")


def require_prompt(prompt: object, *, name: str = "prompt") -> str:
    """Return ``prompt`` if it is a non-empty string (whitespace-only is fine: Go accepts it)."""
    if not isinstance(prompt, str):
        raise InvalidRequestError(
            f"{name} must be a string, got {type(prompt).__name__}", code="invalid_prompt"
        )
    if not prompt:
        raise InvalidRequestError(f"{name} must not be empty", code="prompt_required")
    return prompt


def require_task_id(task_id: object) -> str:
    """Return ``task_id`` if it matches the gateway's task-id pattern."""
    if not isinstance(task_id, str) or not TASK_ID_PATTERN.fullmatch(task_id):
        raise InvalidRequestError(
            f"task_id {task_id!r} must match {TASK_ID_PATTERN.pattern}", code="invalid_task_id"
        )
    return task_id


def require_timeout(timeout: float | None, *, name: str = "timeout") -> float | None:
    """Return ``timeout`` if it is None or a positive finite number of seconds."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidRequestError(f"{name} must be a number of seconds", code="invalid_timeout")
    if not math.isfinite(timeout) or timeout <= 0:
        raise InvalidRequestError(
            f"{name} must be positive, got {timeout!r}", code="invalid_timeout"
        )
    return float(timeout)


def require_positive_int(value: object, *, name: str) -> int:
    """Return ``value`` if it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(
            f"{name} must be an integer >= 1, got {value!r}", code=f"invalid_{name}"
        )
    return value


def require_non_negative_int(value: object, *, name: str) -> int:
    """Return ``value`` if it is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(
            f"{name} must be an integer >= 0, got {value!r}", code=f"invalid_{name}"
        )
    return value


def require_peer_ids(peer_ids: Sequence[str]) -> list[str]:
    """Validate a non-empty sequence of peer ids (duplicates act as weights)."""
    if isinstance(peer_ids, str):
        peer_ids = [peer_ids]
    peers = list(peer_ids)
    if not peers:
        raise InvalidRequestError("scatter requires at least one peer id", code="peer_ids_required")
    return [require_peer_id(p, name="peer id") for p in peers]


def mint_task_id() -> str:
    """Return a fresh task id in the gateway's own form (``task_`` + 32 hex).

    128 random bits straight from the OS, as ``uuid4`` draws them, without building a
    `uuid.UUID` (one id per scatter attempt: the object was most of the cost).
    """
    return "task_" + os.urandom(16).hex()
