"""Raw ASGI helpers: responses that reproduce Go ``net/http`` byte for byte, body reading,
disconnect watching and task ids. No route lives here; every route module builds on it."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from agentfm.mesh._gojson import encode_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

TASK_ID_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")
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


async def read_body(receive: Receive, limit: int = MAX_BODY) -> bytes:
    """Read the request body up to ``limit`` bytes (the gateway's 1 MiB; the rest is never
    read).

    Raises:
        ClientGone: the client disconnected first.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or not message.get("more_body", False):
            return b"".join(chunks)[:limit]


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


async def allow_method(scope: Scope, send: Send, method: str, extra: Headers = ()) -> bool:
    """Whether the request uses ``method``; if not, answer Go's plain-text 405 first."""
    if scope["method"] == method:
        return True
    await plain_error(send, 405, "Method not allowed", extra)
    return False


def mint_task_id() -> str:
    """A server-minted task id: ``task_`` + 24 lowercase hex characters."""
    return "task_" + os.urandom(12).hex()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # an unread request body; only the disconnect matters here


class DisconnectWatch:
    """Cancel the running request task when its client hangs up mid-response.

    uvicorn silently drops writes to a closed connection, so the only signal is
    ``receive()`` returning ``http.disconnect``; watching it lets a task be torn down
    (its subprocess killed) as soon as nobody reads the output.
    """

    __slots__ = ("_done", "_task", "_watcher", "gone")

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self._done = False
        self._task = asyncio.current_task()
        self._watcher = asyncio.ensure_future(_wait_disconnect(receive))
        self._watcher.add_done_callback(self._fire)

    def _fire(self, fut: asyncio.Future[Any]) -> None:
        if self._done or fut.cancelled() or fut.exception() is not None:
            return
        self.gone = True
        if self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        """Stop watching (call before the final write)."""
        self._done = True
        self._watcher.cancel()
