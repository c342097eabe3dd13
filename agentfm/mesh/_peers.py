"""``/v1/peers/*``: routing, peer summaries, reputation, the log and inclusion proofs.

Sub-routes, check orders, limits and codes follow the Go gateway (shared/peers-protocol.md
§2-§4); the comment routes are in `agentfm.mesh._peer_comments`. Also here: wiring the
ledger into a mesh, the trust fields of ``/api/workers`` and
``/v1/models``, and ``feedback`` / ``feedback_rating`` of ``/api/execute``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from agentfm._entries import parse_peer_id
from agentfm.mesh._gojson import gofloat
from agentfm.mesh._http import JSON_TYPE, Headers, Receive, Scope, Send, respond
from agentfm.mesh._ledger import CommentStore, Ledger
from agentfm.mesh._ledger_entry import (
    COMMENT,
    KIND_NAMES,
    MAX_COMMENT_BYTES,
    RATING,
    Entry,
    peer_id_text,
)
from agentfm.mesh._peer_comments import caller_comment, comment_body, self_comment
from agentfm.mesh._peer_wire import (
    JSON_ENCODER,
    check_get,
    error,
    json_response,
    ledger_or_503,
    live,
    local_time,
    query_of,
    read_subject,
    uint_param,
    utc_seconds,
)
from agentfm.mesh._trust import RECOMPUTE_INTERVAL, Reputation
from agentfm.mesh._worker import worker_tags

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator
    from pathlib import Path

    from agentfm.mesh._state import MeshState

log = logging.getLogger("agentfm.mesh.peers")

PREFIX = "/v1/peers/"
LEDGER_FILE = "api_ledger.db"


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
        ("/comments/self", self_comment),
        ("/comments", caller_comment),
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
        await comment_body(state, send, extra, method, cid_text, as_json)
        return
    if rest and "/" not in rest:
        await _summary(state, send, extra, rest, method)
        return
    await error(send, 404, "not_found", "unknown peers sub-resource", extra)


async def _summary(state: MeshState, send: Send, extra: Headers, peer_id: str, method: str) -> None:
    found = await read_subject(state, send, extra, peer_id, method)
    if found is None:
        return
    ledger, subject = found
    rep = state.reputation
    worker = live(state, peer_id)
    entries = ledger.about(subject)
    body: dict[str, Any] = {"peer_id": peer_id, "agent_name": worker.name if worker else ""}
    if worker is not None:
        if worker.config.author:
            body["author"] = worker.config.author
        if worker.config.description:
            body["description"] = worker.config.description
    body["online"] = worker is not None
    if worker is not None:
        body["last_seen"] = local_time(int(worker.last_seen * 1e9))
    apply_trust(state, body)
    body["entries_count"] = len(entries)
    if entries:
        body["last_entry_at"] = local_time(entries[0].inserted_at_ns)
    if worker is not None:
        body.update(worker_tags(worker, "advertised_"))
    raters = {e.rater for e in entries}
    verified = sum(1 for r in raters if rep.rater_status(peer_id_text(r)) == "verified")
    body["rater_summary"] = {
        "verified_raters_count": verified,
        "unverified_raters_count": len(raters) - verified,
    }
    await json_response(send, 200, body, extra)


async def _reputation(
    state: MeshState,
    scope: Scope,
    receive: Receive,
    send: Send,
    extra: Headers,
    peer_id: str,
    method: str,
) -> None:
    found = await read_subject(state, send, extra, peer_id, method)
    if found is None:
        return
    ledger, subject = found
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
        body["last_updated"] = utc_seconds(ratings[0].inserted_at_ns)
    body["is_equivocator"] = marked
    worker = live(state, peer_id)
    if worker is not None:
        body.update(worker_tags(worker, "agent_"))
    await json_response(send, 200, body, extra)


def _log_entry(rep: Reputation, entry: Entry) -> dict[str, Any]:
    rater = peer_id_text(entry.rater)
    out: dict[str, Any] = {
        "received_at": local_time(entry.inserted_at_ns),
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

    found = await read_subject(state, send, extra, peer_id, method)
    if found is None:
        return
    ledger, subject = found
    query = query_of(scope)
    limit = uint_param(query.get("limit"), 50) or 50
    limit = min(limit, 500)
    offset = min(uint_param(query.get("offset"), 0), 1_000_000)
    window = ledger.about(subject)[: limit + offset]
    offset = min(offset, len(window))
    page = window[offset : offset + limit]
    rep = state.reputation
    # Each entry is pre-serialised by Go with HTML escaping; the envelope is not.
    rendered = ",".join(encode(_log_entry(rep, e)) for e in page)
    head = JSON_ENCODER.encode({"subject": peer_id, "limit": limit, "offset": offset})
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
    if not await check_get(send, extra, method):
        return
    ledger = await ledger_or_503(state, send, extra)
    if ledger is None:
        return
    wanted = query_of(scope).get("entry", "")
    if not wanted:
        await error(send, 400, "bad_request", "missing entry query parameter", extra)
        return
    try:
        digest = bytes.fromhex(wanted) if len(wanted) == 64 else b""
    except ValueError:
        digest = b""
    if len(digest) != 32:
        await error(send, 400, "bad_request", "entry must be a 64-char hex string", extra)
        return
    try:
        position, path, head = ledger.prove(digest)
    except KeyError:
        message = f"ledger: entry not in local log: hash={digest.hex()}"
        await error(send, 404, "entry_not_found", message, extra)
        return
    body = {
        "entry_hash": wanted,
        "position": position,
        "audit_path": [node.hex() for node in path],
        "head": {
            "tree_size": head.tree_size,
            "root_hash": head.root_hash.hex(),
            "witness_count": 0,
            "signed_at": utc_seconds(head.signed_at_ns),
        },
    }
    await json_response(send, 200, body, extra)
