"""``/v1/peers/*``: peer summaries, reputation, the log, inclusion proofs and comments.

Sub-routes, check orders, limits and codes follow the Go gateway (shared/peers-protocol.md
§2-§4). Also here: wiring the ledger into a mesh, the trust fields of ``/api/workers`` and
``/v1/models``, and ``feedback`` / ``feedback_rating`` of ``/api/execute``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature

from agentfm._entries import parse_peer_id
from agentfm.mesh._gojson import GoJSONError, decode_object, fields, gofloat
from agentfm.mesh._http import JSON_TYPE, ClientGone, Headers, Receive, Scope, Send, respond
from agentfm.mesh._ledger import (
    COMMENT,
    KIND_NAMES,
    MAX_COMMENT_BYTES,
    RATING,
    CommentStore,
    Entry,
    Ledger,
    parse_cid,
    peer_id_text,
)
from agentfm.mesh._trust import RECOMPUTE_INTERVAL, Reputation

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from pathlib import Path

    from agentfm.mesh._state import MeshState

log = logging.getLogger("agentfm.mesh.peers")

PREFIX = "/v1/peers/"
MAX_POST_BODY = 64 * 1024
LEDGER_FILE = "api_ledger.db"
_INV, _SRV = "invalid_request_error", "server_error"
_TEXT_TYPE = (b"Content-Type", b"text/plain; charset=utf-8")
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# -- wiring -------------------------------------------------------------------------------------


def open_trust(state: MeshState, seed: bytes, folder: Path | None) -> None:
    """Open the ledger and comment store in ``folder`` (None: the ledger is disabled)."""
    if folder is None:
        state.reputation = Reputation(None, state.settings.reputation_floor)
        state.comments = None
        return
    ledger = Ledger(folder / LEDGER_FILE, seed)
    state.comments = CommentStore(folder / "comments")
    state.reputation = Reputation(ledger, state.settings.reputation_floor)


async def trust_loop(state: MeshState) -> None:
    """Recompute scores every minute and write due completion ratings (hourly windows)."""
    while True:
        await asyncio.sleep(RECOMPUTE_INTERVAL)
        rep = state.reputation
        try:
            rep.emit_due()
            rep.recompute()
        except Exception:  # a failed append must not stop the loop: it is logged
            log.exception("reputation tick failed")


def ledger_size(state: MeshState) -> int:
    """``/v1/about.ledger_tree_size``."""
    ledger = state.reputation.ledger
    return ledger.tree_size if ledger is not None else 0


def apply_trust(state: MeshState, entry: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Fill the trust fields of a ``/api/workers`` (or, with ``agentfm_``, ``/v1/models``) entry."""
    peer_id = entry.get("id" if prefix else "peer_id", "")
    score, marked, allowed = state.reputation.trust_fields(str(peer_id))
    entry[f"{prefix}honesty_score"] = gofloat(score)
    entry[f"{prefix}is_equivocator"] = marked
    entry[f"{prefix}dispatch_allowed"] = allowed
    if marked:
        entry[f"{prefix}dispatch_refuse_reason"] = "peer_is_equivocator"
    return entry


def offline_listed(state: MeshState, peer_id: str) -> bool:
    """``include_offline`` lists an offline peer only when some entry is about it."""
    ledger = state.reputation.ledger
    if ledger is None:
        return False
    try:
        return parse_peer_id(peer_id) in ledger.subjects()
    except ValueError:
        return False


def record_feedback(state: MeshState, worker_id: str, feedback: str, rating: float | None) -> None:
    """The ``/api/execute`` feedback: a Comment (``en``) and an unvalidated Rating.

    Failures are only logged, as in the gateway; no recompute is triggered.
    """
    ledger, store = state.reputation.ledger, state.comments
    if not feedback or ledger is None:
        return
    try:
        body = feedback.encode()
        if store is None or len(body) > MAX_COMMENT_BYTES:
            raise ValueError("feedback not storable")
        subject = parse_peer_id(worker_id)
        cid = store.put(body)
        now = time.time_ns()
        ledger.append_comment(subject, cid, "en", now)
        if rating is not None:
            ledger.append_rating(subject, rating, "interactive", now + 1)
    except Exception as exc:
        log.warning("feedback for %s not recorded: %s", worker_id, exc)


async def recorded(
    state: MeshState, peer_id: str, run: AsyncGenerator[bytes, None]
) -> AsyncGenerator[bytes, None]:
    """Pass a worker's task stream through, counting its outcome for completion ratings.

    A stream read to its end is a success, one that raised is a failure; a consumer that
    stops early (the client went away) records nothing.
    """
    try:
        async for chunk in run:
            yield chunk
    except Exception:
        state.reputation.record_outcome(peer_id, False)
        raise
    finally:
        await run.aclose()
    state.reputation.record_outcome(peer_id, True)


# -- formatting -------------------------------------------------------------------------------


def _local_time(ns: int) -> str:
    """RFC 3339 in the local zone with trimmed nanoseconds, like Go's ``time.Time``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds).astimezone()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += f".{frac:09d}".rstrip("0")
    offset = moment.utcoffset() or dt.timedelta()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _utc_seconds(ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(obj: Any) -> bytes:
    # SetEscapeHTML(false) except inside /log entries; U+2028/9 are always escaped by Go.
    text = _JSON_ENCODER.encode(obj).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return (text + "\n").encode()


async def _json(send: Send, status: int, obj: Any, extra: Headers) -> None:
    await respond(send, status, _encode(obj), (JSON_TYPE,), extra)


async def _error(send: Send, status: int, code: str, message: str, extra: Headers) -> None:
    body = {"error": {"message": message, "type": _INV if status < 500 else _SRV, "code": code}}
    await _json(send, status, body, extra)


def _query(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    raw = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(raw, keep_blank_values=True):
        out.setdefault(key, value)
    return out


def _uint(value: str | None, default: int) -> int:
    if not value or not value.isdigit() or not value.isascii():
        return default
    number = int(value)
    return default if number >= 1 << 64 else number


async def _read_post(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_POST_BODY or not message.get("more_body", False):
            return b"".join(chunks)[:MAX_POST_BODY]


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


# -- routing ----------------------------------------------------------------------------------


async def handle(
    state: MeshState, scope: Scope, receive: Receive, send: Send, extra: Headers
) -> None:
    """Dispatch a ``/v1/peers/…`` request by its suffix, in the gateway's order."""
    path: str = scope["path"]
    if "//" in path or path == PREFIX[:-1]:
        # Go's mux cleans the path (and adds the subtree's slash) with a redirect first.
        target = path if path != PREFIX[:-1] else PREFIX
        while "//" in target:
            target = target.replace("//", "/")
        headers = [(b"Location", target.encode()), (b"Content-Type", b"text/html; charset=utf-8")]
        body = f'<a href="{target}">Moved Permanently</a>.\n\n'.encode()
        await respond(send, 301, body, headers, extra)
        return
    rest = path[len(PREFIX) :]
    method = scope["method"]
    routes = (
        ("/reputation", _reputation),
        ("/log", _log),
        ("/proof", _proof),
        ("/comments/self", _self_comment),
        ("/comments", _caller_comment),
    )
    # Suffixes are tested on the whole path, so "/v1/peers/log" is the log route with an
    # empty id, as in the gateway.
    start = len(PREFIX) - 1
    for suffix, route in routes:
        if path.endswith(suffix):
            peer_id = path[len(PREFIX) : max(len(PREFIX), path.find(suffix, start))]
            await route(state, scope, receive, send, extra, peer_id, method)
            return
    if "/comments/" in path[start:]:
        cid_text = path[path.find("/comments/", start) + len("/comments/") :]
        as_json = path.endswith(".json")
        if as_json:
            cid_text = cid_text[: -len(".json")]
        await _comment_body(state, send, extra, method, cid_text, as_json)
        return
    if rest and "/" not in rest:
        await _summary(state, send, extra, rest, method)
        return
    await _error(send, 404, "not_found", "unknown peers sub-resource", extra)


async def _check_get(send: Send, extra: Headers, method: str) -> bool:
    if method != "GET":
        await _error(send, 405, "method_not_allowed", "only GET supported", extra)
        return False
    return True


async def _ledger_or_503(state: MeshState, send: Send, extra: Headers) -> Ledger | None:
    ledger = state.reputation.ledger
    if ledger is None:
        await _error(send, 503, "ledger_unavailable", "ledger not wired on this boss", extra)
    return ledger


async def _subject(
    send: Send, extra: Headers, peer_id: str, missing: str = "missing peer_id in path"
) -> bytes | None:
    if not peer_id:
        await _error(send, 400, "bad_request", missing, extra)
        return None
    try:
        return parse_peer_id(peer_id)
    except ValueError as exc:
        await _error(send, 400, "bad_peer_id", f"failed to parse peer ID: {exc}", extra)
        return None


def _live(state: MeshState, peer_id: str) -> Any:
    return state.workers.get(peer_id)


async def _summary(state: MeshState, send: Send, extra: Headers, peer_id: str, method: str) -> None:
    if not await _check_get(send, extra, method):
        return
    ledger = await _ledger_or_503(state, send, extra)
    if ledger is None:
        return
    subject = await _subject(send, extra, peer_id)
    if subject is None:
        return
    rep = state.reputation
    worker = _live(state, peer_id)
    entries = ledger.about(subject)
    body: dict[str, Any] = {"peer_id": peer_id, "agent_name": worker.name if worker else ""}
    if worker is not None:
        if worker.config.author:
            body["author"] = worker.config.author
        if worker.config.description:
            body["description"] = worker.config.description
    body["online"] = worker is not None
    if worker is not None:
        body["last_seen"] = _local_time(int(worker.last_seen * 1e9))
    score, marked, allowed = rep.trust_fields(peer_id)
    body["honesty_score"] = gofloat(score)
    body["is_equivocator"] = marked
    body["dispatch_allowed"] = allowed
    if marked:
        body["dispatch_refuse_reason"] = "peer_is_equivocator"
    body["entries_count"] = len(entries)
    if entries:
        body["last_entry_at"] = _local_time(entries[0].inserted_at_ns)
    if worker is not None:
        for key, value in (
            ("advertised_image_ref", worker.config.image_ref),
            ("advertised_image_digest", worker.config.image_digest),
            ("advertised_capability", worker.capability),
        ):
            if value:
                body[key] = value
    raters = {e.rater for e in entries}
    verified = sum(1 for r in raters if rep.rater_status(peer_id_text(r)) == "verified")
    body["rater_summary"] = {
        "verified_raters_count": verified,
        "unverified_raters_count": len(raters) - verified,
    }
    await _json(send, 200, body, extra)


async def _reputation(
    state: MeshState,
    scope: Scope,
    receive: Receive,
    send: Send,
    extra: Headers,
    peer_id: str,
    method: str,
) -> None:
    if not await _check_get(send, extra, method):
        return
    ledger = await _ledger_or_503(state, send, extra)
    if ledger is None:
        return
    subject = await _subject(send, extra, peer_id)
    if subject is None:
        return
    rep = state.reputation
    rep.recompute_for_read()
    marked = rep.is_equivocator(peer_id)
    ratings = [e for e in ledger.about(subject) if e.kind == RATING]
    body: dict[str, Any] = {
        "peer_id": peer_id,
        "scores": {"honesty": -1 if marked else gofloat(rep.score(peer_id))},
        "rating_count": len(ratings),
    }
    if ratings:
        body["last_updated"] = _utc_seconds(ratings[0].inserted_at_ns)
    body["is_equivocator"] = marked
    worker = _live(state, peer_id)
    if worker is not None:
        for key, value in (
            ("agent_image_ref", worker.config.image_ref),
            ("agent_image_digest", worker.config.image_digest),
            ("agent_capability", worker.capability),
        ):
            if value:
                body[key] = value
    await _json(send, 200, body, extra)


def _log_entry(rep: Reputation, entry: Entry) -> dict[str, Any]:
    rater = peer_id_text(entry.rater)
    out: dict[str, Any] = {
        "received_at": _local_time(entry.inserted_at_ns),
        "kind": KIND_NAMES[entry.kind],
        "entry_hash": entry.hash.hex(),
        "rater_peer_id": rater,
    }
    if entry.kind == RATING:
        if entry.dimension:
            out["dimension"] = entry.dimension
        if entry.score != 0 and math.isfinite(entry.score):
            out["score"] = gofloat(entry.score)
        if entry.context:
            out["context"] = entry.context
    elif entry.language:
        out["language"] = entry.language
    out["rater_status"] = rep.rater_status(rater)
    out["rater_honesty_score"] = gofloat(rep.score(rater))
    if entry.kind == COMMENT and entry.text_cid:
        out["text_cid"] = entry.text_cid.hex()
    return out


async def _log(
    state: MeshState,
    scope: Scope,
    receive: Receive,
    send: Send,
    extra: Headers,
    peer_id: str,
    method: str,
) -> None:
    from agentfm.mesh._gojson import encode

    if not await _check_get(send, extra, method):
        return
    ledger = await _ledger_or_503(state, send, extra)
    if ledger is None:
        return
    subject = await _subject(send, extra, peer_id)
    if subject is None:
        return
    query = _query(scope)
    limit = _uint(query.get("limit"), 50) or 50
    limit = min(limit, 500)
    offset = min(_uint(query.get("offset"), 0), 1_000_000)
    window = ledger.about(subject)[: limit + offset]
    offset = min(offset, len(window))
    page = window[offset : offset + limit]
    rep = state.reputation
    # Each entry is pre-serialised by Go with HTML escaping; the envelope is not.
    rendered = ",".join(encode(_log_entry(rep, e)) for e in page)
    head = _JSON_ENCODER.encode({"subject": peer_id, "limit": limit, "offset": offset})
    text = f'{head[:-1]},"returned":{len(page)},"entries":[{rendered}]}}\n'
    await respond(send, 200, text.encode(), (JSON_TYPE,), extra)


async def _proof(
    state: MeshState,
    scope: Scope,
    receive: Receive,
    send: Send,
    extra: Headers,
    peer_id: str,
    method: str,
) -> None:
    if not await _check_get(send, extra, method):
        return
    ledger = await _ledger_or_503(state, send, extra)
    if ledger is None:
        return
    wanted = _query(scope).get("entry", "")
    if not wanted:
        await _error(send, 400, "bad_request", "missing entry query parameter", extra)
        return
    try:
        digest = bytes.fromhex(wanted) if len(wanted) == 64 else b""
    except ValueError:
        digest = b""
    if len(digest) != 32:
        await _error(send, 400, "bad_request", "entry must be a 64-char hex string", extra)
        return
    try:
        position, path, head = ledger.prove(digest)
    except KeyError:
        message = f"ledger: entry not in local log: hash={digest.hex()}"
        await _error(send, 404, "entry_not_found", message, extra)
        return
    body = {
        "entry_hash": wanted,
        "position": position,
        "audit_path": [node.hex() for node in path],
        "head": {
            "tree_size": head.tree_size,
            "root_hash": head.root_hash.hex(),
            "witness_count": 0,
            "signed_at": _utc_seconds(head.signed_at_ns),
        },
    }
    await _json(send, 200, body, extra)


async def _post_body(
    send: Send, receive: Receive, extra: Headers, names: tuple[str, ...]
) -> dict[str, Any] | None:
    try:
        raw = await _read_post(receive)
    except ClientGone:
        return None
    try:
        return _strict_object(raw, names)
    except GoJSONError as exc:
        await _error(send, 400, "bad_json", f"invalid JSON body: {exc}", extra)
        return None


async def _self_comment(
    state: MeshState,
    scope: Scope,
    receive: Receive,
    send: Send,
    extra: Headers,
    peer_id: str,
    method: str,
) -> None:
    if method != "POST":
        await _error(send, 405, "method_not_allowed", "only POST supported", extra)
        return
    ledger = await _ledger_or_503(state, send, extra)
    if ledger is None:
        return
    store = state.comments
    if store is None:
        await _error(
            send, 503, "comments_unavailable", "comments store not wired on this boss", extra
        )
        return
    subject = await _subject(send, extra, peer_id, "missing subject peer_id in path")
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
        await _error(send, 400, "bad_json", f"invalid JSON body: {exc}", extra)
        return
    if not text:
        await _error(send, 400, "missing_field", "text is required", extra)
        return
    body = text.encode()
    if len(body) > MAX_COMMENT_BYTES:
        await _error(send, 400, "body_too_large", f"text exceeds {MAX_COMMENT_BYTES} bytes", extra)
        return
    if rating is not None and not (math.isfinite(rating) and -1.0 <= rating <= 1.0):
        message = "rating must be a finite number in [-1.0, +1.0]"
        await _error(send, 400, "bad_rating", message, extra)
        return
    try:
        cid = store.put(body)
    except OSError as exc:
        await _error(send, 400, "store_body", f"store comment body: {exc}", extra)
        return
    now = time.time_ns()
    try:
        comment = ledger.append_comment(subject, cid, language, now, attached)
    except Exception as exc:
        await _error(send, 500, "append_failed", f"append comment: {exc}", extra)
        return
    if rating is not None:
        try:
            ledger.append_rating(subject, float(rating), "interactive", now + 1)
        except Exception:
            log.exception("paired rating for %s not appended", peer_id)
        state.reputation.recompute()
    await _json(send, 201, {"cid": cid.hex(), "ledger_hash": comment.hash.hex()}, extra)


_CALLER_FIELDS = (
    "rater_peer_id",
    "text",
    "timestamp_unix_ns",
    "signature",
    "language",
    "attached_rating_hash",
)


async def _caller_comment(
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
        await _error(send, 501, "not_implemented", "comment submission lands in P4-3", extra)
        return
    if method != "POST":
        await _error(send, 405, "method_not_allowed", "only POST supported", extra)
        return
    ledger = await _ledger_or_503(state, send, extra)
    if ledger is None:
        return
    subject = await _subject(send, extra, peer_id, "missing subject peer_id in path")
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
        await _error(send, 400, "bad_json", f"invalid JSON body: {exc}", extra)
        return
    if not rater_text or not text or not signature_text:
        message = "rater_peer_id, text, and signature are required"
        await _error(send, 400, "missing_field", message, extra)
        return
    if not stamp or stamp <= 0:
        await _error(send, 400, "missing_field", "timestamp_unix_ns must be positive", extra)
        return
    body = text.encode()
    if len(body) > MAX_COMMENT_BYTES:
        await _error(send, 400, "body_too_large", f"text exceeds {MAX_COMMENT_BYTES} bytes", extra)
        return
    try:
        rater = parse_peer_id(rater_text)
    except ValueError as exc:
        await _error(send, 400, "bad_peer_id", f"failed to parse rater peer ID: {exc}", extra)
        return
    if rater != ledger.peer_bytes:
        message = "rater_peer_id must be this boss's peer ID (self-submission only)"
        await _error(send, 403, "non_self_submitter", message, extra)
        return
    try:
        cid = store.put(body)
    except OSError as exc:
        await _error(send, 400, "store_body", f"store comment body: {exc}", extra)
        return
    draft = Entry(
        idx=0,
        kind=COMMENT,
        rater=rater,
        subject=subject,
        timestamp_ns=stamp,
        prev_hash=b"",
        signature=b"",
        inserted_at_ns=0,
        text_cid=cid,
        language=language,
        attached=attached,
    )
    try:
        signature = base64.b64decode(signature_text, validate=True)
        if len(signature) != 64:
            raise ValueError(f"signature is {len(signature)} bytes, want 64")
        ledger.verify_caller_comment(draft, signature)
    except (binascii.Error, ValueError) as exc:
        await _error(send, 401, "bad_signature", f"bad signature: {exc}", extra)
        return
    except InvalidSignature:
        await _error(send, 401, "bad_signature", "signature mismatch", extra)
        return
    try:
        entry = ledger.append_comment(subject, cid, language, stamp, attached)
    except Exception as exc:
        await _error(send, 500, "append_failed", f"append comment: {exc}", extra)
        return
    await _json(send, 201, {"cid": cid.hex(), "ledger_hash": entry.hash.hex()}, extra)


async def _comment_body(
    state: MeshState, send: Send, extra: Headers, method: str, cid_text: str, as_json: bool
) -> None:
    if not await _check_get(send, extra, method):
        return
    store = state.comments
    if store is None:
        await _error(
            send, 503, "comments_unavailable", "comments store not wired on this boss", extra
        )
        return
    if not cid_text or "/" in cid_text:
        await _error(send, 400, "bad_request", "missing CID in path", extra)
        return
    try:
        cid = parse_cid(cid_text)
    except ValueError as exc:
        await _error(send, 400, "bad_cid", f"CID is not a valid multihash: {exc}", extra)
        return
    body = store.get(cid)
    if body is None:
        await _error(send, 404, "comment_not_found", "comment body not found for this CID", extra)
        return
    if as_json:
        payload = {"cid": cid_text, "body": body.decode("utf-8", "replace"), "language": "en"}
        await _json(send, 200, payload, extra)
        return
    await respond(send, 200, body, (_TEXT_TYPE,), extra)
