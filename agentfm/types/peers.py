"""Wire models of ``/v1/peers/*``: summaries, reputation, the log and inclusion proofs."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic resolves it at runtime

from pydantic import BaseModel, ConfigDict, Field

from agentfm._merkle import verify_inclusion

__all__ = [
    "CommentBody",
    "CommentReceipt",
    "InclusionProof",
    "LogHead",
    "PeerEntry",
    "PeerLog",
    "PeerSummary",
    "RaterSummary",
    "ReputationScore",
]

_CONFIG = ConfigDict(extra="ignore", frozen=True)


class RaterSummary(BaseModel):
    """How many distinct authors of entries about a peer are verified (score >= 0.1)."""

    model_config = _CONFIG

    verified_raters_count: int = 0
    unverified_raters_count: int = 0


class PeerSummary(BaseModel):
    """``GET /v1/peers/{id}``: telemetry and trust of one peer (zero data when unknown).

    Example:
        ```python
        summary = client.peers.get(peer_id)
        print(summary.honesty_score, summary.dispatch_allowed, summary.entries_count)
        ```
    """

    model_config = _CONFIG

    peer_id: str
    agent_name: str = ""
    author: str | None = None
    description: str | None = None
    online: bool = False
    last_seen: datetime | None = None
    honesty_score: float = 0.0
    is_equivocator: bool = False
    dispatch_allowed: bool = True
    dispatch_refuse_reason: str | None = None
    entries_count: int = 0
    last_entry_at: datetime | None = None
    advertised_image_ref: str | None = None
    advertised_image_digest: str | None = None
    advertised_capability: str | None = None
    rater_summary: RaterSummary = Field(default_factory=RaterSummary)


class ReputationScore(BaseModel):
    """``GET /v1/peers/{id}/reputation``: scores by dimension (this read refreshes them)."""

    model_config = _CONFIG

    peer_id: str
    scores: dict[str, float] = Field(default_factory=dict)
    rating_count: int = 0
    last_updated: datetime | None = None
    is_equivocator: bool = False
    agent_image_ref: str | None = None
    agent_image_digest: str | None = None
    agent_capability: str | None = None

    @property
    def honesty(self) -> float:
        """``scores["honesty"]`` (0.0 when the gateway has no score engine)."""
        return self.scores.get("honesty", 0.0)


class PeerEntry(BaseModel):
    """One Rating or Comment about a peer, as ``/log`` lists it.

    ``score`` is 0.0 when absent: the gateway omits a score of exactly zero.
    """

    model_config = _CONFIG

    received_at: datetime
    kind: str
    entry_hash: str | None = None
    rater_peer_id: str
    dimension: str | None = None
    score: float = 0.0
    context: str | None = None
    language: str | None = None
    rater_status: str = "unverified"
    rater_honesty_score: float = 0.0
    text_cid: str | None = None


class PeerLog(BaseModel):
    """A page of ``/log``: entries about ``subject``, newest first.

    Example:
        ```python
        page = client.peers.log(peer_id, limit=20)
        while page.entries:
            for entry in page.entries:
                print(entry.kind, entry.score, entry.context)
            page = client.peers.log(peer_id, limit=20, offset=page.next_offset)
        ```
    """

    model_config = _CONFIG

    subject: str
    limit: int
    offset: int
    returned: int
    entries: list[PeerEntry] = Field(default_factory=list)

    @property
    def next_offset(self) -> int:
        """The ``offset`` of the following page."""
        return self.offset + self.returned


class LogHead(BaseModel):
    """The log head a proof is against (its signature is not part of the response)."""

    model_config = _CONFIG

    tree_size: int
    root_hash: str
    witness_count: int = 0
    signed_at: datetime | None = None


class InclusionProof(BaseModel):
    """``GET /v1/peers/{id}/proof``: an RFC 6962 audit path of one own-log entry.

    Example:
        ```python
        proof = client.peers.proof(peer_id, entry.entry_hash)
        assert proof.verify()
        ```
    """

    model_config = _CONFIG

    entry_hash: str
    position: int
    audit_path: list[str] = Field(default_factory=list)
    head: LogHead

    def verify(self, entry_hash: str | None = None) -> bool:
        """Fold the leaf hash with the audit path and compare with ``head.root_hash``.

        Args:
            entry_hash: the leaf to check (default: the echoed ``entry_hash``); pass the
                hash you hold, e.g. from `PeerEntry.entry_hash`, so a gateway cannot prove
                a different entry than the one you asked about.

        Returns:
            False for any mismatch or malformed hex, True only for a valid path.
        """
        try:
            leaf = bytes.fromhex(entry_hash if entry_hash is not None else self.entry_hash)
            path = [bytes.fromhex(node) for node in self.audit_path]
            root = bytes.fromhex(self.head.root_hash)
        except ValueError:
            return False
        if len(leaf) != 32 or len(root) != 32 or any(len(node) != 32 for node in path):
            return False
        return verify_inclusion(leaf, self.position, self.head.tree_size, path, root)


class CommentReceipt(BaseModel):
    """The 201 of a comment: the body's CID and the Comment entry's leaf hash."""

    model_config = _CONFIG

    cid: str
    ledger_hash: str


class CommentBody(BaseModel):
    """``GET /v1/peers/{id}/comments/{cid}.json`` (``language`` is always ``en``)."""

    model_config = _CONFIG

    cid: str
    body: str
    language: str = "en"
