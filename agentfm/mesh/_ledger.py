"""The gateway's own reputation log: signed, hash-chained entries in an append-only SQLite file.

Entries (`agentfm.mesh._ledger_entry`) are signed as the Go gateway signs them:
signature = Ed25519 over SHA-256(canonical bytes), leaf hash = SHA-256(0x00 ‖ canonical
bytes), ``prev_hash`` = the previous leaf hash (32 zero bytes for the first). After every
append a log head over the RFC 6962 root is signed and stored.

Comment bodies live beside the database, one file per CID (``1220`` + SHA-256 of the body).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agentfm._entries import (
    field_bytes,
    field_varint,
)
from agentfm._merkle import MerkleFrontier, inclusion_path
from agentfm.mesh._ledger_entry import (
    ED25519_ID_PREFIX,
    RATING,
    ZERO_HASH,
    Entry,
    cid_of,
    decode_payload,
    parse_fields,
    peer_id_text,
    signed_payload,
)

if TYPE_CHECKING:
    from pathlib import Path


class LedgerError(RuntimeError):
    """The ledger file is unusable (tampered rows, a broken chain, a foreign key)."""


class CommentStore:
    """Comment bodies by CID under ``root``, re-hashed on every read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, cid: bytes) -> Path:
        text = cid.hex()
        return self.root / text[:2] / text

    def put(self, body: bytes) -> bytes:
        """Store ``body`` (fsynced, then renamed into place) and return its CID."""
        cid = cid_of(body)
        path = self._path(cid)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return cid

    def get(self, cid: bytes) -> bytes | None:
        """The body stored under ``cid``; None when missing or no longer matching it."""
        try:
            body = self._path(cid).read_bytes()
        except FileNotFoundError:
            return None
        return body if cid_of(body) == cid else None


# -- the log ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    prev_hash BLOB NOT NULL,
    kind INTEGER NOT NULL,
    payload BLOB NOT NULL,
    sig BLOB NOT NULL,
    inserted_at INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END;
CREATE TABLE IF NOT EXISTS heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    signed_at INTEGER NOT NULL,
    head_blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS equivocators (
    peer_id BLOB PRIMARY KEY,
    alert BLOB NOT NULL,
    marked_at INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS equivocators_no_update BEFORE UPDATE ON equivocators
BEGIN SELECT RAISE(ABORT, 'equivocator marks are permanent'); END;
CREATE TRIGGER IF NOT EXISTS equivocators_no_delete BEFORE DELETE ON equivocators
BEGIN SELECT RAISE(ABORT, 'equivocator marks are permanent'); END;
"""


@dataclass(frozen=True)
class Head:
    """A signed log head."""

    tree_size: int
    root_hash: bytes
    signed_at_ns: int
    signature: bytes


class Ledger:
    """The own log, its heads and the equivocator set, persisted in one SQLite file.

    Args:
        path: the database file (created with its folder when missing).
        seed: the gateway's 32-byte Ed25519 private seed; it signs every entry and head.

    Raises:
        LedgerError: the file holds entries that do not verify under this key and chain.
    """

    def __init__(self, path: Path, seed: bytes) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.peer_bytes = ED25519_ID_PREFIX + public
        self.peer_id = peer_id_text(self.peer_bytes)
        path.parent.mkdir(parents=True, exist_ok=True)
        # One event loop owns the mesh, but it is built in the caller's thread.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self.entries: list[Entry] = []
        self.leaves: list[bytes] = []
        self._frontier = MerkleFrontier()
        self.equivocators: set[bytes] = {
            row[0] for row in self._db.execute("SELECT peer_id FROM equivocators")
        }
        self._load()
        self.head: Head | None = self._latest_head()

    def _load(self) -> None:
        prev = ZERO_HASH
        rows = self._db.execute(
            "SELECT idx, hash, prev_hash, payload, inserted_at FROM entries ORDER BY idx"
        )
        public = self._key.public_key()
        for idx, stored_hash, prev_hash, payload, inserted_at in rows:
            entry = decode_payload(idx, payload, inserted_at)
            digest = hashlib.sha256(entry.canonical()).digest()
            if idx != len(self.entries) + 1 or prev_hash != prev or entry.prev_hash != prev:
                raise LedgerError(f"ledger chain broken at entry {idx}")
            if entry.hash != stored_hash:
                raise LedgerError(f"ledger entry {idx} does not match its hash")
            try:
                public.verify(entry.signature, digest)
            except InvalidSignature:
                raise LedgerError(
                    f"ledger entry {idx} is not signed by this gateway's key"
                ) from None
            self.entries.append(entry)
            self.leaves.append(stored_hash)
            self._frontier.append(stored_hash)
            prev = stored_hash

    def _latest_head(self) -> Head | None:
        row = self._db.execute(
            "SELECT tree_size, root_hash, signed_at, head_blob FROM heads "
            "ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        if row is None or row[0] != len(self.entries):
            return self._sign_head() if self.entries else None
        return Head(row[0], row[1], row[2], parse_fields(row[3]).get(5, b""))  # type: ignore[arg-type]

    @property
    def tree_size(self) -> int:
        """Entries in the own log."""
        return len(self.entries)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- writing ----------------------------------------------------------------------------
    def _sign(self, entry: Entry) -> Entry:
        digest = hashlib.sha256(entry.canonical()).digest()
        return _replace(entry, signature=self._key.sign(digest))

    def _sign_head(self) -> Head:
        size = len(self.leaves)
        root = self._frontier.root()
        now = time.time_ns()
        unsigned = b"".join(
            (
                field_bytes(1, self.peer_bytes),
                field_varint(2, size),
                field_bytes(3, root),
                field_varint(4, now),
            )
        )
        signature = self._key.sign(hashlib.sha256(unsigned).digest())
        blob = unsigned + field_bytes(5, signature)
        self._db.execute(
            "INSERT OR REPLACE INTO heads (tree_size, root_hash, signed_at, head_blob) "
            "VALUES (?, ?, ?, ?)",
            (size, root, now, blob),
        )
        return Head(size, root, now, signature)

    def _append(self, draft: Entry) -> Entry:
        prev = self.leaves[-1] if self.leaves else ZERO_HASH
        entry = self._sign(
            _replace(
                draft,
                idx=len(self.entries) + 1,
                prev_hash=prev,
                rater=self.peer_bytes,
                inserted_at_ns=time.time_ns(),
            )
        )
        digest = entry.hash
        saved = self._frontier.copy()
        # The entry and the head over it land together or not at all.
        self._db.execute("BEGIN IMMEDIATE")
        appended = False
        try:
            self._db.execute(
                "INSERT INTO entries (idx, hash, prev_hash, kind, payload, sig, inserted_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.idx,
                    digest,
                    prev,
                    entry.kind,
                    signed_payload(entry),
                    entry.signature,
                    entry.inserted_at_ns,
                ),
            )
            self._frontier.append(digest)
            self.leaves.append(digest)
            appended = True
            head = self._sign_head()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._frontier = saved
            if appended:
                self.leaves.pop()
            raise
        self.entries.append(entry)
        self.head = head
        return entry

    def append_comment(
        self,
        subject: bytes,
        cid: bytes,
        language: str,
        timestamp_ns: int,
        attached: bytes = b"",
    ) -> Entry:
        """Sign and append a Comment authored by the gateway."""
        return self._append(
            Entry.draft_comment(b"", subject, cid, language, attached, timestamp_ns)
        )

    def append_rating(self, subject: bytes, score: float, context: str, timestamp_ns: int) -> Entry:
        """Sign and append an ``honesty`` Rating authored by the gateway."""
        draft = Entry(
            idx=0,
            kind=RATING,
            rater=b"",
            subject=subject,
            timestamp_ns=timestamp_ns,
            prev_hash=b"",
            signature=b"",
            inserted_at_ns=0,
            dimension="honesty",
            score=score,
            context=context,
        )
        return self._append(draft)

    # -- reading ----------------------------------------------------------------------------
    def about(self, subject: bytes) -> list[Entry]:
        """Entries whose subject is ``subject``, newest stored first."""
        found = [e for e in self.entries if e.subject == subject]
        found.sort(key=lambda e: e.inserted_at_ns, reverse=True)
        return found

    def subjects(self) -> set[bytes]:
        """Every peer some entry is about."""
        return {e.subject for e in self.entries}

    def prove(self, digest: bytes) -> tuple[int, list[bytes], Head]:
        """Position and audit path of the own entry with leaf hash ``digest``.

        Raises:
            KeyError: no own entry has that hash.
        """
        try:
            position = self.leaves.index(digest)
        except ValueError:
            raise KeyError(digest.hex()) from None
        assert self.head is not None
        return position, inclusion_path(self.leaves, position), self.head

    def verify_caller_comment(self, draft: Entry, signature: bytes) -> None:
        """Check a caller's signature over a Comment without ``prev_hash``.

        Raises:
            InvalidSignature: it does not verify under the gateway's key.
        """
        digest = hashlib.sha256(draft.canonical(with_prev=False)).digest()
        self._key.public_key().verify(signature, digest)


def _replace(entry: Entry, **changes: object) -> Entry:
    from dataclasses import replace

    return replace(entry, **changes)  # type: ignore[arg-type]
