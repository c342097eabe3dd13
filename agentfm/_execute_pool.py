"""Lean keep-alive HTTP/1.1 connections for scatter's ``POST /api/execute`` attempts.

A scatter of thousands of short tasks is bound by the client's own CPU when every attempt
goes through a general HTTP stack. `ExecutePool` runs each attempt on an asyncio protocol
with a well-kept parser doing all the framing: llhttp through **httptools** when it is
installed (it comes with the mesh extra; about a tenth of h11's cost per response), else
**h11** (the sans-IO HTTP/1.1 state machine under httpcore, always present). Chunk sizes,
chunk CRLFs, conflicting lengths, header syntax, 1xx interim replies and bodyless statuses
are the parser's job, and anything malformed is a `GatewayProtocolError`. h11 validates
each request head (CR/LF in a header is refused before sending).
Everything above the framing is the SDK's shared code: the request is `RequestSpec`'s
(same headers, same body cap), the body goes through `MarkerDecoder` as it arrives, a
non-2xx answer through `error_from_response`, a refused or broken connection through
`error_from_transport`, and timeouts through the builders the httpx path uses. The
connection protocol itself (one per socket, h11 or llhttp) is `agentfm._execute_conn`.

A request is re-sent only when it provably never left: a pooled connection is checked for
staleness (expiry below the server's keep-alive, and no EOF pending) before it is used,
and a write onto a connection that is already closing goes to a fresh one instead. Once
bytes may have reached the server, a failure fails the attempt and scatter's failover
decides what happens next.

Only plain ``http://`` gateways without a proxy take this path (`supports`); anything else
uses the regular client.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import h11
import httpx

from agentfm._base_client import (
    call_timeout_error,
    error_from_transport,
    idle_bound,
    idle_timeout_error,
)
from agentfm._constants import KEEPALIVE_EXPIRY
from agentfm._execute_conn import Connection, Exchange, Head, LLConnection, httptools
from agentfm.exceptions import AgentFMError, InvalidRequestError

if TYPE_CHECKING:
    from agentfm._base_client import RequestSpec

__all__ = ["PARSER", "ExecutePool", "supports"]

PARSER = "auto"
"""Response parser: ``"httptools"`` (llhttp) when installed, else ``"h11"``; tests pin one."""

# Validated request heads kept per (target, body length).
_HEAD_CACHE = 512


def supports(gateway_url: str, *, proxy: httpx.Proxy | None = None) -> bool:
    """Whether `ExecutePool` can serve this gateway (plain HTTP, no proxy in the way)."""
    parts = urlsplit(gateway_url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        return False
    if proxy is not None:
        return False
    proxies = urllib.request.getproxies()
    if not (proxies.get("http") or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname))


class ExecutePool:
    """Run ``POST /api/execute`` tasks over reused connections of one event loop.

    Args:
        gateway_url: ``http://host:port`` of the gateway (no userinfo: the clients turn it
            into an ``Authorization`` header, which arrives with the spec's headers).
        connect_timeout: Seconds to open a connection (None: no limit).
        max_connections: Connections open at once (None: as many as attempts in flight);
            further attempts wait for one to be free.
        keepalive_expiry: An idle connection older than this is not reused (below the
            server's own keep-alive timeout, so it is never reused as the server closes it).

    Example:
        ```python
        pool = ExecutePool("http://127.0.0.1:8080", connect_timeout=10)
        text, files_incoming = await pool.execute(spec, timeout=None)
        pool.close()
        ```
    """

    def __init__(
        self,
        gateway_url: str,
        *,
        connect_timeout: float | None,
        max_connections: int | None = None,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        parts = urlsplit(gateway_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._url = gateway_url
        self._netloc = parts.netloc.rsplit("@", 1)[-1].encode("ascii")
        self._connect_timeout = connect_timeout
        self._expiry = keepalive_expiry
        self._idle: deque[Connection] = deque()
        self._all: set[Connection] = set()
        self._limit = asyncio.Semaphore(max_connections) if max_connections else None
        self._headers_key: object = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._heads: dict[tuple[bytes, int], Head] = {}
        self._targets: dict[str, bytes] = {}
        parser = PARSER
        if parser == "auto":
            parser = "httptools" if httptools is not None else "h11"
        self._conn_class = LLConnection if parser == "httptools" else Connection
        self.connections_opened = 0

    def _request(self, spec: RequestSpec, body: bytes) -> Head:
        """The h11 request head; h11 validates each distinct head once, then it is reused.

        A scatter sends the same headers mapping with every task, and only the body length
        varies, so validated heads are kept per length (a few hundred at most).
        """
        if spec.headers is not self._headers_key:
            skip = {"host", "content-length", "content-type", "transfer-encoding", "connection"}
            encoded = [(b"Host", self._netloc)]
            for name, value in spec.headers.items():
                if name.lower() not in skip:
                    encoded.append((name.encode("latin-1"), value.encode("latin-1")))
            encoded.append((b"Content-Type", b"application/json"))
            self._headers = encoded
            self._headers_key = spec.headers
            self._heads.clear()
            self._targets.clear()
        target = self._targets.get(spec.path)
        if target is None:
            target = self._targets[spec.path] = urlsplit(spec.path).path.encode("ascii") or b"/"
        key = (target, len(body))
        head = self._heads.get(key)
        if head is None:
            try:
                head = Head(
                    h11.Request(
                        method=b"POST",
                        target=target,
                        headers=[*self._headers, (b"Content-Length", b"%d" % len(body))],
                    )
                )
            except h11.LocalProtocolError as exc:
                raise InvalidRequestError(
                    f"cannot send this request: {exc}", code="invalid_request"
                ) from None
            if len(self._heads) >= _HEAD_CACHE:
                self._heads.clear()
                self._targets.clear()
            self._heads[key] = head
        # h11 events are immutable: sharing one between requests is safe.
        return head

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        url = self._url
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: self._conn_class(url), self._host, self._port),
                self._connect_timeout,
            )
        except asyncio.TimeoutError:
            raise error_from_transport(httpx.ConnectTimeout("connect"), gateway_url=url) from None
        except OSError as exc:
            failed = httpx.ConnectError(str(exc) or type(exc).__name__)
            raise error_from_transport(failed, gateway_url=url) from None
        self.connections_opened += 1
        self._all.add(conn)
        return conn

    def _checkout(self, now: float) -> Connection | None:
        """A pooled connection fit to carry a request, or None (then a new one is opened)."""
        while self._idle:
            candidate = self._idle.pop()
            if not candidate.stale(now, self._expiry):
                return candidate
            candidate.abort()
            self._all.discard(candidate)
        return None

    async def execute(
        self,
        spec: RequestSpec,
        *,
        timeout: float | None,
        idle_timeout: float | None = None,
        max_output_bytes: int | None = None,
        body: bytes | None = None,
    ) -> tuple[str, bool]:
        """Run one task; return its text and whether files are incoming.

        ``body``: the encoded JSON body (`agentfm._base_client.encode_body`) when it is not
        the spec's own: a scatter sends one spec with a body per attempt.

        Raises:
            AgentFMError: the typed error of the regular path (`IncompleteStreamError`,
                `WorkerRejectedError`, `WorkerNotFoundError`, …); ``task_started`` is set
                when the failure came after a 200.
        """
        if body is None:
            body = spec.encode_body() or b""
        if self._limit is None:
            return await self._execute(spec, body, timeout, idle_timeout, max_output_bytes)
        async with self._limit:
            return await self._execute(spec, body, timeout, idle_timeout, max_output_bytes)

    async def _execute(
        self,
        spec: RequestSpec,
        body: bytes,
        timeout: float | None,
        idle_timeout: float | None,
        max_output_bytes: int | None,
    ) -> tuple[str, bool]:
        head = self._request(spec, body)
        loop = asyncio.get_running_loop()
        conn = self._checkout(loop.time()) or await self._connect()
        if conn.closed or conn.transport is None or conn.transport.is_closing():
            # Closed between the check and the write: nothing was written, use a fresh one.
            self._all.discard(conn)
            conn = await self._connect()
        raw = conn.encode(head, body)
        waiter: asyncio.Future[tuple[str, bool]] = loop.create_future()
        conn.start(raw, Exchange(waiter, max_output_bytes))
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, self._expire, conn, waiter, timeout)
        idle = idle_bound(timeout, spec.idle_timeout if idle_timeout is None else idle_timeout)
        idle_timer = None
        if idle is not None:
            idle_timer = loop.call_later(idle, self._check_idle, conn, waiter, idle)
        try:
            result = await waiter
        except asyncio.CancelledError:
            conn.abort()
            self._all.discard(conn)
            raise
        except AgentFMError:
            # A complete error answer (404, a rejection line) leaves the connection usable.
            self._release(conn, loop.time())
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if idle_timer is not None:
                idle_timer.cancel()
        self._release(conn, loop.time())
        return result

    def _release(self, conn: Connection, now: float) -> None:
        if conn.reusable:
            conn.finish_cycle(now)
            self._idle.append(conn)
        else:
            conn.abort()
            self._all.discard(conn)

    @staticmethod
    def _expire(conn: Connection, waiter: asyncio.Future[tuple[str, bool]], timeout: float) -> None:
        if not waiter.done():
            conn.fail(call_timeout_error(timeout))

    def _check_idle(
        self, conn: Connection, waiter: asyncio.Future[tuple[str, bool]], idle: float
    ) -> None:
        if waiter.done():
            return
        loop = asyncio.get_running_loop()
        silent = loop.time() - conn.last_byte
        if silent >= idle:
            conn.fail(idle_timeout_error(idle))
            return
        # Bytes came meanwhile: check again when the bound would next run out. The timer
        # is not cancelled here; the waiter being done is what stops the chain.
        loop.call_later(idle - silent, self._check_idle, conn, waiter, idle)

    def close(self) -> None:
        """Close every connection (call from the pool's event loop)."""
        for conn in self._all:
            if conn.transport is not None:
                conn.transport.close()
        self._all.clear()
        self._idle.clear()
