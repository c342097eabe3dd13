"""Shared pieces of the ``/v1/peers/*`` handlers: Go-format JSON, errors, time formats."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from agentfm._entries import parse_peer_id
from agentfm.mesh._http import JSON_TYPE, Headers, Scope, Send, respond

if TYPE_CHECKING:
    from agentfm.mesh._ledger import Ledger
    from agentfm.mesh._state import MeshState

INV, SRV = "invalid_request_error", "server_error"
JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def local_time(ns: int) -> str:
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


def utc_seconds(ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(obj: Any) -> bytes:
    # SetEscapeHTML(false) except inside /log entries; U+2028/9 are always escaped by Go.
    text = JSON_ENCODER.encode(obj).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return (text + "\n").encode()


async def json_response(send: Send, status: int, obj: Any, extra: Headers) -> None:
    await respond(send, status, encode(obj), (JSON_TYPE,), extra)


async def error(send: Send, status: int, code: str, message: str, extra: Headers) -> None:
    body = {"error": {"message": message, "type": INV if status < 500 else SRV, "code": code}}
    await json_response(send, status, body, extra)


def query_of(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    raw = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(raw, keep_blank_values=True):
        out.setdefault(key, value)
    return out


def uint_param(value: str | None, default: int) -> int:
    if not value or not value.isdigit() or not value.isascii():
        return default
    number = int(value)
    return default if number >= 1 << 64 else number


async def check_get(send: Send, extra: Headers, method: str) -> bool:
    if method != "GET":
        await error(send, 405, "method_not_allowed", "only GET supported", extra)
        return False
    return True


async def ledger_or_503(state: MeshState, send: Send, extra: Headers) -> Ledger | None:
    ledger = state.reputation.ledger
    if ledger is None:
        await error(send, 503, "ledger_unavailable", "ledger not wired on this boss", extra)
    return ledger


async def subject_of(
    send: Send, extra: Headers, peer_id: str, missing: str = "missing peer_id in path"
) -> bytes | None:
    if not peer_id:
        await error(send, 400, "bad_request", missing, extra)
        return None
    try:
        return parse_peer_id(peer_id)
    except ValueError as exc:
        await error(send, 400, "bad_peer_id", f"failed to parse peer ID: {exc}", extra)
        return None


async def read_subject(
    state: MeshState, send: Send, extra: Headers, peer_id: str, method: str
) -> tuple[Ledger, bytes] | None:
    """The GET-about-a-peer preamble in Go's order: method, then ledger, then the id.

    Answers the error itself and returns None when a step fails.
    """
    if not await check_get(send, extra, method):
        return None
    ledger = await ledger_or_503(state, send, extra)
    if ledger is None:
        return None
    subject = await subject_of(send, extra, peer_id)
    if subject is None:
        return None
    return ledger, subject


def live(state: MeshState, peer_id: str) -> Any:
    return state.workers.get(peer_id)
