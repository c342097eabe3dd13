"""RFC 6962 Merkle hashing: leaf and node hashes, roots, inclusion paths and their check.

The gateway's ledger is an RFC 6962 tree over its own log. The SDK uses `verify_inclusion`
to check a ``/proof`` answer against the head's ``root_hash``; the embedded mesh uses
`merkle_root` and `inclusion_path` to build them. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "MerkleFrontier",
    "inclusion_path",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(canonical: bytes) -> bytes:
    """``SHA-256(0x00 ‖ canonical bytes)``: an entry's ``entry_hash`` / ``ledger_hash``."""
    return hashlib.sha256(b"\x00" + canonical).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``: an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n`` >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root of the tree over ``leaves`` (already leaf-hashed), in log order."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index``, the leaf-side sibling first.

    Raises:
        IndexError: ``index`` is outside the tree.
    """
    n = len(leaves)
    if not 0 <= index < n:
        raise IndexError(f"leaf {index} outside a tree of {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_path(leaves[:k], index), merkle_root(leaves[k:])]
    return [*inclusion_path(leaves[k:], index - k), merkle_root(leaves[:k])]


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``path`` proves ``leaf`` sits at ``index`` of the tree with ``root``.

    The algorithm of RFC 9162 §2.1.3.2; any malformed input (index outside the tree, a
    path of the wrong length) is simply False.
    """
    if tree_size <= 0 or not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(sibling, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


class MerkleFrontier:
    """The roots of the perfect subtrees of a growing log: O(log n) per append and root.

    A tree of n leaves is the perfect subtrees of n's binary digits, largest first, and its
    RFC 6962 root folds them from the right, so a log never rehashes old leaves.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []

    def copy(self) -> MerkleFrontier:
        """An independent copy (to roll an append back)."""
        other = MerkleFrontier()
        other._stack = list(self._stack)
        return other

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash."""
        size, node = 1, leaf
        while self._stack and self._stack[-1][0] == size:
            left_size, left = self._stack.pop()
            size, node = left_size + size, node_hash(left, node)
        self._stack.append((size, node))

    def root(self) -> bytes:
        """The root of the tree so far."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node
