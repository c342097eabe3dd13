"""Raw ASGI response helpers that reproduce Go ``net/http`` responses byte for byte."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from agentfm.mesh._gojson import encode_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

MAX_BODY = 1024 * 1024
# Go sends a Content-Length only when the handler's whole output fits its 2 KiB buffer.
GO_BUFFER = 2048

PLAIN_HEADERS = (
    (b"Content-Type", b"text/plain; charset=utf-8"),
    (b"X-Content-Type-Options", b"nosniff"),
)
JSON_TYPE = (b"Content-Type", b"application/json")
CORS_HEADERS = (
    (b"Access-Control-Allow-Origin", b"*"),
    (b"Access-Control-Allow-Methods", b"GET, POST, OPTIONS"),
    (b"Access-Control-Allow-Headers", b"Content-Type"),
)
SSE_HEADERS = (
    (b"Content-Type", b"text/event-stream"),
    (b"Cache-Control", b"no-cache"),
    (b"Connection", b"keep-alive"),
    (b"X-Accel-Buffering", b"no"),
)


class ClientGone(Exception):
    """The client disconnected before the request body was read."""


async def read_body(receive: Receive) -> bytes:
    """Read the request body through the gateway's 1 MiB limit (the rest is never read)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body[:MAX_BODY]
    chunks = [body]
    size = len(body)
    while size < MAX_BODY:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)[:MAX_BODY]


async def respond(
    send: Send, status: int, body: bytes, headers: Headers, extra: Headers = ()
) -> None:
    """Send a complete response, chunked like Go when the body outgrows its buffer."""
    all_headers = [*headers, *extra]
    if len(body) <= GO_BUFFER:
        all_headers.append((b"Content-Length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def plain_error(send: Send, status: int, message: str, extra: Headers = ()) -> None:
    """``http.Error``: plain text, nosniff, message plus newline."""
    await respond(send, status, message.encode() + b"\n", PLAIN_HEADERS, extra)


async def json_response(send: Send, status: int, obj: Any, extra: Headers = ()) -> None:
    """``json.NewEncoder(w).Encode(obj)`` with ``Content-Type: application/json``."""
    await respond(send, status, encode_bytes(obj), (JSON_TYPE,), extra)


async def envelope_error(
    send: Send, status: int, err_type: str, code: str, message: str, extra: Headers = ()
) -> None:
    """The OpenAI-shaped JSON error envelope."""
    body = {"error": {"message": message, "type": err_type, "code": code}}
    await json_response(send, status, body, extra)
