"""``/v1/peers/{id}/comments…``: gateway-signed and caller-signed comments, bodies by CID."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from agentfm._entries import parse_peer_id
from agentfm.mesh._gojson import GoJSONError, decode_object, fields
from agentfm.mesh._http import ClientGone, Headers, Receive, Scope, Send, read_body, respond
from agentfm.mesh._ledger_entry import MAX_COMMENT_BYTES, Entry, parse_cid
from agentfm.mesh._peer_wire import check_get, error, json_response, ledger_or_503, subject_of

if TYPE_CHECKING:
    from agentfm.mesh._state import MeshState

log = logging.getLogger("agentfm.mesh.peers")

MAX_POST_BODY = 64 * 1024
_TEXT_TYPE = (b"Content-Type", b"text/plain; charset=utf-8")


def _strict_object(body: bytes, names: tuple[str, ...]) -> dict[str, Any]:
    """Go's ``DisallowTrailing`` decode into a struct: one JSON value and nothing after it."""
    if not body.strip(b" \t\r\n"):
        raise GoJSONError("EOF")
    obj = decode_object(body)
    try:
        json.loads(body.decode("utf-8", "replace"))
    except ValueError as exc:
        raise GoJSONError(str(exc)) from None
    return fields(obj, names)


def _str(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise GoJSONError("wrong type for string field")
    return value


def _attached(value: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if len(value) == 64 else b""
    except ValueError:
        return b""
    return raw


async def _post_body(
    send: Send, receive: Receive, extra: Headers, names: tuple[str, ...]
) -> dict[str, Any] | None:
    try:
        raw = await read_body(receive, MAX_POST_BODY)
    except ClientGone:
        return None
    try:
        return _strict_object(raw, names)
    except GoJSONError as exc:
        await error(send, 400, "bad_json", f"invalid JSON body: {exc}", extra)
        return None


async def self_comment(
    state: MeshState,
    scope: Scope,
    receive: Receive,
    send: Send,
    extra: Headers,
    peer_id: str,
    method: str,
) -> None:
    if method != "POST":
        await error(send, 405, "method_not_allowed", "only POST supported", extra)
        return
    ledger = await ledger_or_503(state, send, extra)
    if ledger is None:
        return
    store = state.comments
    if store is None:
        await error(
            send, 503, "comments_unavailable", "comments store not wired on this boss", extra
        )
        return
    subject = await subject_of(send, extra, peer_id, "missing subject peer_id in path")
    if subject is None:
        return
    req = await _post_body(
        send, receive, extra, ("text", "language", "rating", "attached_rating_hash")
    )
    if req is None:
        return
    try:
        text, language = _str(req.get("text")), _str(req.get("language"))
        attached = _attached(_str(req.get("attached_rating_hash")))
        rating = req.get("rating")
        if rating is not None and (
            isinstance(rating, bool) or not isinstance(rating, (int, float))
        ):
            raise GoJSONError("wrong type for rating")
    except GoJSONError as exc:
        await error(send, 400, "bad_json", f"invalid JSON body: {exc}", extra)
        return
    if not text:
        await error(send, 400, "missing_field", "text is required", extra)
        return
    body = text.encode()
    if len(body) > MAX_COMMENT_BYTES:
        await error(send, 400, "body_too_large", f"text exceeds {MAX_COMMENT_BYTES} bytes", extra)
        return
    if rating is not None and not (math.isfinite(rating) and -1.0 <= rating <= 1.0):
        message = "rating must be a finite number in [-1.0, +1.0]"
        await error(send, 400, "bad_rating", message, extra)
        return
    try:
        cid = store.put(body)
    except OSError as exc:
        await error(send, 400, "store_body", f"store comment body: {exc}", extra)
        return
    now = time.time_ns()
    try:
        comment = ledger.append_comment(subject, cid, language, now, attached)
    except Exception as exc:
        await error(send, 500, "append_failed", f"append comment: {exc}", extra)
        return
    if rating is not None:
        try:
            ledger.append_rating(subject, float(rating), "interactive", now + 1)
        except Exception:
            log.exception("paired rating for %s not appended", peer_id)
        state.reputation.recompute()
    await json_response(send, 201, {"cid": cid.hex(), "ledger_hash": comment.hash.hex()}, extra)


_CALLER_FIELDS = (
    "rater_peer_id",
    "text",
    "timestamp_unix_ns",
    "signature",
    "language",
    "attached_rating_hash",
)


async def caller_comment(
    state: MeshState,
    scope: Scope,
    receive: Receive,
    send: Send,
    extra: Headers,
    peer_id: str,
    method: str,
) -> None:
    store = state.comments
    if store is None:
        await error(send, 501, "not_implemented", "comment submission lands in P4-3", extra)
        return
    if method != "POST":
        await error(send, 405, "method_not_allowed", "only POST supported", extra)
        return
    ledger = await ledger_or_503(state, send, extra)
    if ledger is None:
        return
    subject = await subject_of(send, extra, peer_id, "missing subject peer_id in path")
    if subject is None:
        return
    req = await _post_body(send, receive, extra, _CALLER_FIELDS)
    if req is None:
        return
    try:
        rater_text, text = _str(req.get("rater_peer_id")), _str(req.get("text"))
        signature_text, language = _str(req.get("signature")), _str(req.get("language"))
        attached = _attached(_str(req.get("attached_rating_hash")))
        stamp = req.get("timestamp_unix_ns")
        if stamp is not None and (
            isinstance(stamp, bool)
            or not isinstance(stamp, int)
            or not -(1 << 63) <= stamp < 1 << 63
        ):
            raise GoJSONError("timestamp_unix_ns must be an int64")
    except GoJSONError as exc:
        await error(send, 400, "bad_json", f"invalid JSON body: {exc}", extra)
        return
    if not rater_text or not text or not signature_text:
        message = "rater_peer_id, text, and signature are required"
        await error(send, 400, "missing_field", message, extra)
        return
    if not stamp or stamp <= 0:
        await error(send, 400, "missing_field", "timestamp_unix_ns must be positive", extra)
        return
    body = text.encode()
    if len(body) > MAX_COMMENT_BYTES:
        await error(send, 400, "body_too_large", f"text exceeds {MAX_COMMENT_BYTES} bytes", extra)
        return
    try:
        rater = parse_peer_id(rater_text)
    except ValueError as exc:
        await error(send, 400, "bad_peer_id", f"failed to parse rater peer ID: {exc}", extra)
        return
    if rater != ledger.peer_bytes:
        message = "rater_peer_id must be this boss's peer ID (self-submission only)"
        await error(send, 403, "non_self_submitter", message, extra)
        return
    try:
        cid = store.put(body)
    except OSError as exc:
        await error(send, 400, "store_body", f"store comment body: {exc}", extra)
        return
    draft = Entry.draft_comment(rater, subject, cid, language, attached, stamp)
    try:
        signature = base64.b64decode(signature_text, validate=True)
        if len(signature) != 64:
            raise ValueError(f"signature is {len(signature)} bytes, want 64")
        ledger.verify_caller_comment(draft, signature)
    except (binascii.Error, ValueError) as exc:
        await error(send, 401, "bad_signature", f"bad signature: {exc}", extra)
        return
    except InvalidSignature:
        await error(send, 401, "bad_signature", "signature mismatch", extra)
        return
    try:
        entry = ledger.append_comment(subject, cid, language, stamp, attached)
    except Exception as exc:
        await error(send, 500, "append_failed", f"append comment: {exc}", extra)
        return
    await json_response(send, 201, {"cid": cid.hex(), "ledger_hash": entry.hash.hex()}, extra)


async def comment_body(
    state: MeshState, send: Send, extra: Headers, method: str, cid_text: str, as_json: bool
) -> None:
    if not await check_get(send, extra, method):
        return
    store = state.comments
    if store is None:
        await error(
            send, 503, "comments_unavailable", "comments store not wired on this boss", extra
        )
        return
    if not cid_text or "/" in cid_text:
        await error(send, 400, "bad_request", "missing CID in path", extra)
        return
    try:
        cid = parse_cid(cid_text)
    except ValueError as exc:
        await error(send, 400, "bad_cid", f"CID is not a valid multihash: {exc}", extra)
        return
    body = store.get(cid)
    if body is None:
        await error(send, 404, "comment_not_found", "comment body not found for this CID", extra)
        return
    if as_json:
        payload = {"cid": cid_text, "body": body.decode("utf-8", "replace"), "language": "en"}
        await json_response(send, 200, payload, extra)
        return
    await respond(send, 200, body, (_TEXT_TYPE,), extra)
