"""`SwarmKey`: the libp2p private-network key shared by every peer of a private mesh."""

from __future__ import annotations

import os
import secrets
import string
from pathlib import Path

__all__ = ["HEADER", "KEY_HEX_LEN", "SwarmKey"]

HEADER = "/key/swarm/psk/1.0.0/\n/base16/\n"
KEY_HEX_LEN = 64
_HEX = frozenset(string.hexdigits)


class SwarmKey:
    """A 32-byte pre-shared key in the ``/key/swarm/psk/1.0.0/`` file format.

    ``str()`` and ``repr()`` never show the key; use `to_text` to write it out.

    Example:
        ```python
        key = SwarmKey.generate()
        key.save("~/.agentfm/swarm.key")  # created 0600
        ```
    """

    __slots__ = ("key_hex",)

    def __init__(self, key_hex: str) -> None:
        if not isinstance(key_hex, str):
            raise TypeError("key_hex must be a str")
        if len(key_hex) != KEY_HEX_LEN or not set(key_hex) <= _HEX:
            raise ValueError(f"swarm key must be exactly {KEY_HEX_LEN} hex characters")
        self.key_hex = key_hex.lower()

    @classmethod
    def generate(cls) -> SwarmKey:
        """A fresh random key."""
        return cls(secrets.token_bytes(32).hex())

    @classmethod
    def from_string(cls, text: str) -> SwarmKey:
        """Parse the three-line swarm key file format."""
        lines = text.strip().splitlines()
        if len(lines) < 3 or lines[0].strip() != "/key/swarm/psk/1.0.0/":
            raise ValueError("not a swarm key: the first line must be /key/swarm/psk/1.0.0/")
        if lines[1].strip() != "/base16/":
            raise ValueError("unsupported swarm key encoding: the second line must be /base16/")
        return cls(lines[2].strip())

    @classmethod
    def load(cls, path: str | Path) -> SwarmKey:
        """Read a swarm key file."""
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_file():
            raise FileNotFoundError(f"swarm key not found: {resolved}")
        return cls.from_string(resolved.read_text(encoding="utf-8"))

    def to_text(self) -> str:
        """The file contents (contains the secret)."""
        return f"{HEADER}{self.key_hex}\n"

    def save(self, path: str | Path) -> Path:
        """Write the key file, created with mode 0600 from the start; returns its path."""
        resolved = Path(path).expanduser().resolve()
        resolved.parent.mkdir(parents=True, exist_ok=True)
        tmp = resolved.with_name(f".{resolved.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_text())
            os.replace(tmp, resolved)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return resolved

    def __str__(self) -> str:
        return repr(self)

    def __repr__(self) -> str:
        return f"SwarmKey({self.key_hex[:4]}…)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SwarmKey) and secrets.compare_digest(self.key_hex, other.key_hex)

    def __hash__(self) -> int:
        return hash(("SwarmKey", self.key_hex))
