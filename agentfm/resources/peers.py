"""``client.peers``: peer trust on the mesh (summaries, reputation, the signed log, comments).

Every method is one request to the gateway's ``/v1/peers/*`` routes (``list`` reads
``/api/workers``). Peer ids go into the path as given, so a malformed one is the gateway's
``400 bad_peer_id``; only an empty one is refused here, since the gateway would redirect it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from agentfm._base_client import RequestSpec
from agentfm._entries import comment_digest, parse_peer_id
from agentfm._flow import Emit
from agentfm._resource import AsyncAPIResource, SyncAPIResource, validate
from agentfm.exceptions import GatewayProtocolError, InvalidRequestError
from agentfm.resources.workers import _list_spec, parse_workers
from agentfm.types.peers import (
    CommentBody,
    CommentReceipt,
    InclusionProof,
    PeerEntry,
    PeerLog,
    PeerSummary,
    ReputationScore,
)

if TYPE_CHECKING:
    import builtins
    from collections.abc import AsyncIterator, Iterator

    import httpx

    from agentfm._flow import Flow
    from agentfm.models import WorkerProfile

__all__ = ["AsyncPeers", "Peers", "Signer"]

Signer = Callable[[bytes], bytes]
"""Signs the 32-byte digest with the rater's Ed25519 key and returns the 64-byte signature,
e.g. ``Ed25519PrivateKey.sign`` from ``cryptography``."""

M = TypeVar("M", bound=BaseModel)
MAX_OFFSET = 1_000_000


def _path(peer_id: str, suffix: str = "") -> str:
    if not isinstance(peer_id, str) or not peer_id:
        raise InvalidRequestError("peer_id must be a non-empty string", code="bad_request")
    return f"/v1/peers/{quote(peer_id, safe='')}{suffix}"


def _get(peer_id: str, suffix: str = "", params: dict[str, str] | None = None) -> RequestSpec:
    return RequestSpec("GET", _path(peer_id, suffix), params=params, idempotent=True)


def _parse(model: type[M], body: Any, route: str) -> M:
    return validate(model, body, f"unexpected {route} body")


def _int(value: object, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{name} must be an int, got {value!r}", code=f"invalid_{name}")
    return str(value)


def _log_spec(peer_id: str, limit: int, offset: int) -> RequestSpec:
    params = {"limit": _int(limit, "limit"), "offset": _int(offset, "offset")}
    return _get(peer_id, "/log", params)


def _cid_path(peer_id: str, cid: str, as_json: bool) -> RequestSpec:
    if not isinstance(cid, str) or not cid:
        raise InvalidRequestError("cid must be a non-empty string", code="bad_request")
    suffix = f"/comments/{quote(cid, safe='')}{'.json' if as_json else ''}"
    return RequestSpec("GET", _path(peer_id, suffix), idempotent=True)


def _self_comment_spec(
    peer_id: str,
    text: str,
    rating: float | None,
    language: str,
    attached_rating_hash: str | None,
) -> RequestSpec:
    body: dict[str, Any] = {"text": text, "language": language}
    if rating is not None:
        body["rating"] = rating
    if attached_rating_hash is not None:
        body["attached_rating_hash"] = attached_rating_hash
    return RequestSpec("POST", _path(peer_id, "/comments/self"), json=body)


def _attached_bytes(value: str | None) -> bytes:
    """The gateway signs ``attached_rating_hash`` only when it is 32 bytes of hex."""
    if value is None or len(value) != 64:
        return b""
    try:
        return bytes.fromhex(value)
    except ValueError:
        return b""


def _signed_comment_spec(
    peer_id: str,
    text: str,
    rater_peer_id: str,
    signer: Signer,
    language: str,
    attached_rating_hash: str | None,
    timestamp_unix_ns: int | None,
) -> RequestSpec:
    path = _path(peer_id, "/comments")
    stamp = time.time_ns() if timestamp_unix_ns is None else timestamp_unix_ns
    try:
        subject, rater = parse_peer_id(peer_id), parse_peer_id(rater_peer_id)
    except ValueError as exc:
        # The gateway answers 400 bad_peer_id for both; the bytes to sign need them parsed.
        raise InvalidRequestError(f"not a peer id: {exc}", code="bad_peer_id") from None
    digest = comment_digest(
        rater, subject, text, language, _attached_bytes(attached_rating_hash), stamp
    )
    signature = signer(digest)
    body: dict[str, Any] = {
        "rater_peer_id": rater_peer_id,
        "text": text,
        "language": language,
        "timestamp_unix_ns": stamp,
        "signature": base64.b64encode(signature).decode(),
    }
    if attached_rating_hash is not None:
        body["attached_rating_hash"] = attached_rating_hash
    return RequestSpec("POST", path, json=body)


_ABOUT = RequestSpec("GET", "/v1/about", idempotent=True)


def _boss_id(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("boss_peer_id"), str):
        raise GatewayProtocolError("unexpected /v1/about body", code="invalid_response")
    return str(body["boss_peer_id"])


def log_flow(peer_id: str, page_size: int) -> Flow[PeerEntry, None]:
    """Every entry about the peer, newest first, page by page (the log has no cursor)."""
    offset = 0
    while offset <= MAX_OFFSET:
        page = _parse(PeerLog, (yield _log_spec(peer_id, page_size, offset)), "/log")
        for entry in page.entries:
            yield Emit(entry)
        if page.returned < page.limit or not page.returned:
            return
        offset = page.next_offset


def _text(response: httpx.Response) -> str:
    return response.content.decode("utf-8", errors="replace")


class Peers(SyncAPIResource):
    """Sync ``client.peers``.

    Example:
        ```python
        summary = client.peers.get(peer_id)
        client.peers.comment(peer_id, "fast and correct", rating=0.5)
        for entry in client.peers.log(peer_id).entries:
            assert client.peers.proof(peer_id, entry.entry_hash).verify(entry.entry_hash)
        ```
    """

    def list(self, *, include_offline: bool = False) -> builtins.list[WorkerProfile]:
        """Known peers with their trust fields (``/api/workers``).

        ``include_offline=True`` adds offline peers the ledger has entries about.
        """
        return parse_workers(self._client.request_json(_list_spec(include_offline)))

    def get(self, peer_id: str) -> PeerSummary:
        """The peer's summary; an unknown but valid id gives zero data, not an error."""
        return _parse(PeerSummary, self._client.request_json(_get(peer_id)), "/v1/peers/{id}")

    def reputation(self, peer_id: str) -> ReputationScore:
        """Scores by dimension; this read makes the gateway refresh its scores."""
        body = self._client.request_json(_get(peer_id, "/reputation"))
        return _parse(ReputationScore, body, "/reputation")

    def log(self, peer_id: str, *, limit: int = 50, offset: int = 0) -> PeerLog:
        """One page of entries about the peer, newest first (the gateway clamps ``limit``
        to 1..500, 0 meaning 50, and ``offset`` to 1,000,000)."""
        return _parse(PeerLog, self._client.request_json(_log_spec(peer_id, limit, offset)), "/log")

    def iter_log(self, peer_id: str, *, page_size: int = 100) -> Iterator[PeerEntry]:
        """Every entry about the peer, newest first, fetched page by page.

        The log has no cursor: entries appended while paging shift later pages.
        """
        return self._client.iterate(log_flow(peer_id, page_size))

    def proof(self, peer_id: str, entry_hash: str) -> InclusionProof:
        """The inclusion proof of one of the gateway's own entries (see `InclusionProof.verify`)."""
        spec = _get(peer_id, "/proof", {"entry": entry_hash})
        return _parse(InclusionProof, self._client.request_json(spec), "/proof")

    def verify(self, peer_id: str, entry_hash: str) -> bool:
        """Fetch the proof of ``entry_hash`` and check it against the current head's root."""
        return self.proof(peer_id, entry_hash).verify(entry_hash)

    def comment_body(self, peer_id: str, cid: str) -> str:
        """A comment's text by its CID (``text_cid`` of a log entry)."""
        return _text(self._client.request(_cid_path(peer_id, cid, as_json=False)))

    def comment_body_json(self, peer_id: str, cid: str) -> CommentBody:
        """A comment's text by CID via the ``.json`` route."""
        body = self._client.request_json(_cid_path(peer_id, cid, as_json=True))
        return _parse(CommentBody, body, "/comments/{cid}.json")

    def comment(
        self,
        peer_id: str,
        text: str,
        *,
        rating: float | None = None,
        language: str = "en",
        attached_rating_hash: str | None = None,
    ) -> CommentReceipt:
        """Comment on a peer, signed by the gateway; ``rating`` (-1..1) adds an honesty Rating.

        Never retried: each call appends an entry.
        """
        spec = _self_comment_spec(peer_id, text, rating, language, attached_rating_hash)
        return _parse(CommentReceipt, self._client.request_json(spec), "/comments/self")

    def comment_signed(
        self,
        peer_id: str,
        text: str,
        *,
        rater_peer_id: str,
        signer: Signer,
        language: str = "en",
        attached_rating_hash: str | None = None,
        timestamp_unix_ns: int | None = None,
    ) -> CommentReceipt:
        """Comment signed by a key the caller holds (``POST …/comments``).

        The gateway accepts only its own key (``rater_peer_id`` = `gateway_id`); ``signer``
        signs the canonical Comment digest. Never retried.
        """
        spec = _signed_comment_spec(
            peer_id, text, rater_peer_id, signer, language, attached_rating_hash, timestamp_unix_ns
        )
        return _parse(CommentReceipt, self._client.request_json(spec), "/comments")

    def gateway_id(self) -> str:
        """The gateway's own peer id (``/v1/about.boss_peer_id``), the rater of its entries."""
        return _boss_id(self._client.request_json(_ABOUT))


class AsyncPeers(AsyncAPIResource):
    """Async ``client.peers`` (the methods of `Peers`, awaited)."""

    async def list(self, *, include_offline: bool = False) -> builtins.list[WorkerProfile]:
        """Known peers with their trust fields (``/api/workers``)."""
        return parse_workers(await self._client.request_json(_list_spec(include_offline)))

    async def get(self, peer_id: str) -> PeerSummary:
        """The peer's summary; an unknown but valid id gives zero data, not an error."""
        body = await self._client.request_json(_get(peer_id))
        return _parse(PeerSummary, body, "/v1/peers/{id}")

    async def reputation(self, peer_id: str) -> ReputationScore:
        """Scores by dimension; this read makes the gateway refresh its scores."""
        body = await self._client.request_json(_get(peer_id, "/reputation"))
        return _parse(ReputationScore, body, "/reputation")

    async def log(self, peer_id: str, *, limit: int = 50, offset: int = 0) -> PeerLog:
        """One page of entries about the peer, newest first."""
        body = await self._client.request_json(_log_spec(peer_id, limit, offset))
        return _parse(PeerLog, body, "/log")

    def iter_log(self, peer_id: str, *, page_size: int = 100) -> AsyncIterator[PeerEntry]:
        """Every entry about the peer, newest first, fetched page by page."""
        return self._client.iterate(log_flow(peer_id, page_size))

    async def proof(self, peer_id: str, entry_hash: str) -> InclusionProof:
        """The inclusion proof of one of the gateway's own entries."""
        spec = _get(peer_id, "/proof", {"entry": entry_hash})
        return _parse(InclusionProof, await self._client.request_json(spec), "/proof")

    async def verify(self, peer_id: str, entry_hash: str) -> bool:
        """Fetch the proof of ``entry_hash`` and check it against the current head's root."""
        return (await self.proof(peer_id, entry_hash)).verify(entry_hash)

    async def comment_body(self, peer_id: str, cid: str) -> str:
        """A comment's text by its CID."""
        return _text(await self._client.request(_cid_path(peer_id, cid, as_json=False)))

    async def comment_body_json(self, peer_id: str, cid: str) -> CommentBody:
        """A comment's text by CID via the ``.json`` route."""
        body = await self._client.request_json(_cid_path(peer_id, cid, as_json=True))
        return _parse(CommentBody, body, "/comments/{cid}.json")

    async def comment(
        self,
        peer_id: str,
        text: str,
        *,
        rating: float | None = None,
        language: str = "en",
        attached_rating_hash: str | None = None,
    ) -> CommentReceipt:
        """Comment on a peer, signed by the gateway; ``rating`` adds an honesty Rating."""
        spec = _self_comment_spec(peer_id, text, rating, language, attached_rating_hash)
        return _parse(CommentReceipt, await self._client.request_json(spec), "/comments/self")

    async def comment_signed(
        self,
        peer_id: str,
        text: str,
        *,
        rater_peer_id: str,
        signer: Signer,
        language: str = "en",
        attached_rating_hash: str | None = None,
        timestamp_unix_ns: int | None = None,
    ) -> CommentReceipt:
        """Comment signed by a key the caller holds (the gateway accepts only its own)."""
        spec = _signed_comment_spec(
            peer_id, text, rater_peer_id, signer, language, attached_rating_hash, timestamp_unix_ns
        )
        return _parse(CommentReceipt, await self._client.request_json(spec), "/comments")

    async def gateway_id(self) -> str:
        """The gateway's own peer id (``/v1/about.boss_peer_id``)."""
        return _boss_id(await self._client.request_json(_ABOUT))
