"""Lean keep-alive HTTP/1.1 connections for scatter's ``POST /api/execute`` attempts.

A scatter of thousands of short tasks is bound by the client's own CPU when every attempt
goes through a general HTTP stack. `ExecutePool` speaks just the subset of HTTP/1.1 the
gateway's task route uses (one JSON POST, a chunked or sized text body) on asyncio
protocols, and reuses the SDK's pure pieces for everything else: `MarkerDecoder` for the
body and `error_from_response` for non-200 answers, so errors are typed exactly as on the
regular path. A request is never re-sent: a connection that dies before answering fails
the attempt, and scatter's failover decides what happens next.

Only plain ``http://`` gateways without a proxy take this path (`supports`); anything else
uses the regular client.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from agentfm._base_client import error_from_response
from agentfm._streaming import MarkerDecoder
from agentfm.exceptions import (
    AgentFMError,
    AgentFMTimeoutError,
    GatewayConnectionError,
    GatewayProtocolError,
    WorkerStreamError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ExecutePool", "supports"]

_HEAD_LIMIT = 64 * 1024


def supports(gateway_url: str) -> bool:
    """Whether `ExecutePool` can serve this gateway (plain HTTP, no proxy in the way)."""
    parts = urlsplit(gateway_url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        return False
    proxies = urllib.request.getproxies()
    if not (proxies.get("http") or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname))


class _Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one response per request."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.closed = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[_Response] | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._mode = ""  # "" (head), "chunked", "length", "close", "trailer"
        self._remaining = 0
        self._keep_alive = True
        self._got_bytes = False

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only duck-typed.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        self._buf += data
        try:
            self._parse()
        except GatewayProtocolError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._mode == "close" and self._status:
            self._done()
            return
        if not self._got_bytes:
            self._fail(
                GatewayConnectionError(
                    f"the gateway closed the connection without answering: {exc or 'EOF'}",
                    code="connection_error",
                )
            )
        else:
            self._fail(
                WorkerStreamError(
                    f"the connection broke in the middle of the response: {exc or 'EOF'}",
                    code="worker_stream_failed",
                )
            )

    # -- use ----------------------------------------------------------------------------
    def request(self, raw: bytes) -> asyncio.Future[_Response]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._buf.clear()
        self._status = 0
        self._headers = {}
        self._body = []
        self._mode = ""
        self._keep_alive = True
        self._got_bytes = False
        self.transport.write(raw)
        return self._waiter

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        return not self.closed and self._keep_alive

    def _fail(self, exc: AgentFMError) -> None:
        self._keep_alive = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.abort()

    def _done(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(_Response(self._status, self._headers, b"".join(self._body)))

    def _parse(self) -> None:
        buf = self._buf
        while True:
            mode = self._mode
            if mode == "":
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > _HEAD_LIMIT:
                        raise GatewayProtocolError("response head too large", code="bad_response")
                    return
                self._head(bytes(buf[:end]))
                del buf[: end + 4]
            elif mode == "chunked":
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    return
                try:
                    size = int(bytes(buf[:line_end]).split(b";", 1)[0], 16)
                except ValueError:
                    raise GatewayProtocolError("bad chunk size", code="bad_response") from None
                if size == 0:
                    del buf[: line_end + 2]
                    self._mode = "trailer"
                    continue
                if len(buf) < line_end + 2 + size + 2:
                    return
                self._body.append(bytes(buf[line_end + 2 : line_end + 2 + size]))
                del buf[: line_end + 4 + size]
            elif mode == "trailer":
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    return
                del buf[: line_end + 2]
                if line_end == 0:
                    self._mode = "idle"
                    self._done()
                    return
            elif mode == "length":
                take = min(self._remaining, len(buf))
                if take:
                    self._body.append(bytes(buf[:take]))
                    del buf[:take]
                    self._remaining -= take
                if self._remaining == 0:
                    self._mode = "idle"
                    self._done()
                return
            elif mode == "close":
                if buf:
                    self._body.append(bytes(buf))
                    buf.clear()
                return
            else:
                return  # bytes after a complete response: ignored

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise GatewayProtocolError(
                f"not an HTTP response: {lines[0][:80]!r}", code="bad_response"
            )
        try:
            self._status = int(parts[1])
        except ValueError:
            raise GatewayProtocolError("bad status line", code="bad_response") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self._headers = headers
        if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
            self._keep_alive = False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode = "chunked"
        elif "content-length" in headers:
            try:
                self._remaining = int(headers["content-length"])
            except ValueError:
                raise GatewayProtocolError("bad Content-Length", code="bad_response") from None
            self._mode = "length"
        else:
            self._mode = "close"
            self._keep_alive = False


class ExecutePool:
    """Run ``POST /api/execute`` tasks over reused connections of one event loop.

    Args:
        gateway_url: ``http://host:port`` of the gateway.
        headers: Headers sent with every request (auth, user agent, defaults).
        connect_timeout: Seconds to open a connection (None: no limit).
        max_connections: Connections open at once (None: as many as attempts in flight);
            further attempts wait for one to be free.

    Example:
        ```python
        pool = ExecutePool("http://127.0.0.1:8080", {"User-Agent": "me"})
        text, files_incoming = await pool.execute(peer, "hello", "task_1", timeout=None)
        pool.close()
        ```
    """

    def __init__(
        self,
        gateway_url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float | None,
        max_connections: int | None = None,
    ) -> None:
        parts = urlsplit(gateway_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._url = gateway_url
        self._connect_timeout = connect_timeout
        netloc = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"POST /api/execute HTTP/1.1\r\nHost: {netloc}\r\n"]
        skip = {"host", "content-length", "content-type", "transfer-encoding", "connection"}
        lines += [f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() not in skip]
        lines.append("Content-Type: application/json\r\nContent-Length: ")
        self._prefix = "".join(lines).encode("latin-1")
        self._idle: deque[_Connection] = deque()
        self._all: set[_Connection] = set()
        self._limit = asyncio.Semaphore(max_connections) if max_connections else None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, self._host, self._port),
                self._connect_timeout,
            )
        except asyncio.TimeoutError:
            raise AgentFMTimeoutError(
                f"timed out connecting to the gateway at {self._url}", code="timeout"
            ) from None
        except OSError as exc:
            raise GatewayConnectionError(
                f"could not reach the gateway at {self._url}: {exc}", code="connection_error"
            ) from None
        self._all.add(conn)
        return conn

    async def execute(
        self, peer_id: str, prompt: str, task_id: str, timeout: float | None
    ) -> tuple[str, bool]:
        """Run one task; return its text and whether files are incoming.

        Raises:
            AgentFMError: the typed error of the regular path (`IncompleteStreamError`,
                `WorkerRejectedError`, `WorkerNotFoundError`, …); ``task_started`` is set
                when the failure came after a 200.
        """
        if self._limit is None:
            return await self._execute(peer_id, prompt, task_id, timeout)
        async with self._limit:
            return await self._execute(peer_id, prompt, task_id, timeout)

    async def _execute(
        self, peer_id: str, prompt: str, task_id: str, timeout: float | None
    ) -> tuple[str, bool]:
        body = json.dumps(
            {"worker_id": peer_id, "prompt": prompt, "task_id": task_id}, ensure_ascii=False
        ).encode()
        raw = self._prefix + str(len(body)).encode() + b"\r\n\r\n" + body
        conn: _Connection | None = None
        while self._idle:
            candidate = self._idle.pop()
            if not candidate.closed:
                conn = candidate
                break
            self._all.discard(candidate)
        if conn is None:
            conn = await self._connect()
        waiter = conn.request(raw)
        timer = None
        if timeout is not None:
            timer = asyncio.get_running_loop().call_later(
                timeout,
                conn._fail,
                AgentFMTimeoutError(f"task did not finish within {timeout}s", code="timeout"),
            )
        try:
            response = await waiter
        except asyncio.CancelledError:
            conn.abort()
            self._all.discard(conn)
            raise
        except AgentFMError as exc:
            self._all.discard(conn)
            exc.task_started = bool(conn._status == 200)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if conn.reusable:
            self._idle.append(conn)
        else:
            conn.abort()
            self._all.discard(conn)
        return self._decode(response)

    @staticmethod
    def _decode(response: _Response) -> tuple[str, bool]:
        if response.status != 200:
            raise error_from_response(response.status, response.headers, response.body)
        decoder = MarkerDecoder()
        parts = decoder.feed(response.body)
        parts += decoder.flush()
        text = "".join(parts)
        if decoder.error is not None:
            error = decoder.error
            error.task_started = True
            if text:
                error.partial_text = text  # type: ignore[attr-defined]
            raise error
        return text, decoder.files_incoming

    def close(self) -> None:
        """Close every connection (call from the pool's event loop)."""
        for conn in self._all:
            if conn.transport is not None:
                conn.transport.close()
        self._all.clear()
        self._idle.clear()
