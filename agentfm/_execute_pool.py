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
non-2xx answer through `error_from_response`, and timeouts and broken connections through
the same error builders as the httpx path.

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
import select
import socket
import urllib.request
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h11
import httpx

try:  # llhttp (C), a mesh dependency: the same framing checks at a tenth of the cost
    import httptools
except ImportError:  # pragma: no cover - h11 alone is enough
    httptools = None  # type: ignore[assignment]

from agentfm._base_client import (
    call_timeout_error,
    error_from_response,
    error_from_transport,
    idle_bound,
    idle_timeout_error,
    output_too_large_error,
)
from agentfm._constants import KEEPALIVE_EXPIRY
from agentfm._streaming import MarkerDecoder
from agentfm.exceptions import AgentFMError, GatewayProtocolError, InvalidRequestError

if TYPE_CHECKING:
    from agentfm._base_client import RequestSpec

__all__ = ["PARSER", "ExecutePool", "supports"]

PARSER = "auto"
"""Response parser: ``"httptools"`` (llhttp) when installed, else ``"h11"``; tests pin one."""

# h11 refuses a response head larger than this (a hostile gateway cannot grow our memory).
_HEAD_LIMIT = 64 * 1024
# Response headers that frame the body (else it ends at EOF).
_FRAMING = (b"content-length", b"transfer-encoding")
# Validated request heads kept per (target, body length).
_HEAD_CACHE = 512
# TCP keepalive: a peer that vanished (partition, power loss) is noticed in about
# IDLE + INTERVAL * COUNT seconds instead of never.
_KEEPALIVE_IDLE = 60
_KEEPALIVE_INTERVAL = 10
_KEEPALIVE_COUNT = 6


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


def _malformed(exc: Exception) -> GatewayProtocolError:
    """A response either parser refused (bad framing, bad head): never read as an answer."""
    return GatewayProtocolError(f"malformed response from the gateway: {exc}", code="bad_response")


def _set_keepalive(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, _KEEPALIVE_IDLE)
        if hasattr(socket, "TCP_KEEPINTVL"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, _KEEPALIVE_INTERVAL)
        if hasattr(socket, "TCP_KEEPCNT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, _KEEPALIVE_COUNT)
    except (OSError, AttributeError):  # pragma: no cover - platform without these options
        pass


class _Head:
    """A request head validated by h11 once, as an h11 event and as bytes."""

    __slots__ = ("event", "raw")

    def __init__(self, event: h11.Request) -> None:
        self.event = event
        scratch = h11.Connection(h11.CLIENT)
        self.raw: bytes = scratch.send(event) or b""


class _Exchange:
    """The state of one request/response on a connection."""

    __slots__ = (
        "body",
        "decoder",
        "headers",
        "limit",
        "parts",
        "received",
        "status",
        "waiter",
    )

    def __init__(self, waiter: asyncio.Future[tuple[str, bool]], limit: int | None) -> None:
        self.waiter = waiter
        self.limit = limit
        self.status = 0
        self.headers: dict[str, str] = {}
        self.decoder: MarkerDecoder | None = None
        self.parts: list[str] = []
        self.body: list[bytes] = []
        self.received = 0


class _Connection(asyncio.Protocol):
    """One keep-alive connection; h11 frames one exchange at a time."""

    def __init__(self, gateway_url: str) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.last_byte = 0.0
        self.got_bytes = False
        self._url = gateway_url
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_HEAD_LIMIT)
        self._exchange: _Exchange | None = None
        self._fd = -1

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only duck-typed.
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _set_keepalive(sock)
            self._fd = sock.fileno()

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.last_byte = asyncio.get_running_loop().time()
        exchange = self._exchange
        if exchange is None:
            # Bytes while idle: nothing may arrive between exchanges.
            self.abort()
            return
        try:
            self._h11.receive_data(data)
            self._pump(exchange)
        except h11.RemoteProtocolError as exc:
            self._fail(_malformed(exc))
        except AgentFMError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self._exchange
        if exchange is None or exchange.waiter.done():
            return
        self._feed_eof(exchange)
        if exchange.waiter.done():
            return
        detail = str(exc) if exc else "EOF"
        # The httpx path's mapping, fed the event in httpx's terms: no byte back is an
        # unanswered request, a close after the first byte a broken stream.
        if not self.got_bytes:
            unanswered = httpx.RemoteProtocolError(
                f"the gateway closed the connection without answering: {detail}"
            )
            self._fail(error_from_transport(unanswered, gateway_url=self._url))
        else:
            cut = httpx.ReadError(f"the connection broke in the middle of the response: {detail}")
            self._fail(error_from_transport(cut, gateway_url=self._url, phase="body"))

    def _feed_eof(self, exchange: _Exchange) -> None:
        try:
            # EOF ends a close-delimited body (h11 decides whether that is legal here).
            self._h11.receive_data(b"")
            self._pump(exchange)
        except (h11.RemoteProtocolError, AgentFMError):
            pass

    # -- use ----------------------------------------------------------------------------
    def stale(self, now: float, expiry: float) -> bool:
        """Whether this idle connection must not carry another request."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return True
        if now - self.idle_since >= expiry:
            return True
        if self._fd >= 0:
            # Readable while idle means EOF (or stray bytes) not yet seen by the loop.
            try:
                readable, _, _ = select.select([self._fd], [], [], 0)
            except (OSError, ValueError):
                return True
            return bool(readable)
        return False

    def start(self, request: bytes, exchange: _Exchange) -> None:
        assert self.transport is not None
        self._exchange = exchange
        self.got_bytes = False
        self.last_byte = asyncio.get_running_loop().time()
        self.transport.write(request)

    def encode(self, head: _Head, body: bytes) -> bytes:
        conn = self._h11
        try:
            return (
                conn.send(head.event)
                + conn.send(h11.Data(data=body))
                + conn.send(h11.EndOfMessage())
            )
        except h11.LocalProtocolError as exc:
            raise InvalidRequestError(
                f"cannot send this request: {exc}", code="invalid_request"
            ) from None

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def reusable(self) -> bool:
        conn = self._h11
        return not self.closed and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def finish_cycle(self, now: float) -> None:
        self._exchange = None
        self._h11.start_next_cycle()
        self.idle_since = now

    def _fail(self, exc: AgentFMError) -> None:
        exchange = self._exchange
        if exchange is not None and not exchange.waiter.done():
            if exchange.status and 200 <= exchange.status < 300:
                exc.task_started = True
            exchange.waiter.set_exception(exc)
        self.abort()

    def _pump(self, exchange: _Exchange) -> None:
        conn = self._h11
        while True:
            event = conn.next_event()
            kind = type(event)
            if kind is h11.Data:
                self._on_data(exchange, event.data)  # type: ignore[union-attr]
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return
            elif kind is h11.Response:
                self._on_head(exchange, event.status_code, event.headers)  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                self._on_end(exchange)
                return
            elif kind is h11.InformationalResponse:
                continue  # 100 Continue, 103 Early Hints: the real answer follows
            elif kind is h11.ConnectionClosed:
                return

    def _on_head(self, exchange: _Exchange, status: int, headers: Any) -> None:
        exchange.status = status
        if 200 <= status < 400:
            exchange.decoder = MarkerDecoder()
        else:
            exchange.headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers
            }

    def _on_data(self, exchange: _Exchange, data: bytes) -> None:
        if type(data) is not bytes:  # h11 hands out slices of its bytearray buffer
            data = bytes(data)
        exchange.received += len(data)
        if exchange.limit is not None and exchange.received > exchange.limit:
            raise output_too_large_error(exchange.limit)
        decoder = exchange.decoder
        if decoder is not None:
            # Decoded as it arrives: only the text is kept, never the raw body too.
            exchange.parts += decoder.feed(data)
        else:
            exchange.body.append(data)

    def _on_end(self, exchange: _Exchange) -> None:
        if exchange.waiter.done():
            return
        decoder = exchange.decoder
        if decoder is None:
            exchange.waiter.set_exception(
                error_from_response(exchange.status, exchange.headers, b"".join(exchange.body))
            )
            return
        exchange.parts += decoder.flush()
        text = "".join(exchange.parts)
        exchange.parts.clear()
        error = decoder.error
        if error is not None:
            error.task_started = True
            if text:
                error.partial_text = text  # type: ignore[attr-defined]
            exchange.waiter.set_exception(error)
            return
        exchange.waiter.set_result((text, decoder.files_incoming))


class _LLConnection(_Connection):
    """The same connection with llhttp (httptools) doing the framing instead of h11.

    llhttp refuses the same malformed framings (bad chunk sizes, a missing chunk CRLF,
    duplicate Content-Length, CR in a header), skips nothing by itself, and knows that
    1xx, 204 and 304 have no body; interim 1xx messages are ignored here.
    """

    def __init__(self, gateway_url: str) -> None:
        super().__init__(gateway_url)
        assert httptools is not None
        self._ll = httptools.HttpResponseParser(self)
        self._ll_headers: list[tuple[bytes, bytes]] = []
        self._ll_framed = False  # a Content-Length or Transfer-Encoding header came
        self._ll_keep = True
        self._ll_done = False
        self._ll_in_message = False
        self._ll_close_delimited = False
        # Body pieces of one read, decoded together (one decoder call per read, not per chunk).
        self._ll_body: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.last_byte = asyncio.get_running_loop().time()
        if self._exchange is None:
            self.abort()  # bytes while idle: nothing may arrive between exchanges
            return
        try:
            self._ll.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, AgentFMError):
                self._fail(cause)
            else:  # pragma: no cover - a bug in a callback
                raise
        except httptools.HttpParserError as exc:
            self._fail(_malformed(exc))
        else:
            if self._ll_body:
                try:
                    self._ll_flush()
                except AgentFMError as exc:
                    self._fail(exc)

    def _ll_flush(self) -> None:
        pieces, exchange = self._ll_body, self._exchange
        self._ll_body = []
        if exchange is not None and not exchange.waiter.done():
            self._on_data(exchange, pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _feed_eof(self, exchange: _Exchange) -> None:
        if self._ll_in_message and self._ll_close_delimited and not self._ll_done:
            self._ll_done = True
            self._ll_keep = False
            self._on_end(exchange)

    # llhttp callbacks
    def on_message_begin(self) -> None:
        if self._ll_done:
            self._ll_keep = False  # bytes after the answer: do not reuse the connection
        self._ll_headers = []
        self._ll_framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._ll_headers.append((name, value))
        if len(name) in (14, 17) and name.lower() in _FRAMING:
            self._ll_framed = True

    def on_headers_complete(self) -> None:
        status = self._ll.get_status_code()
        exchange = self._exchange
        if status < 200 or exchange is None or self._ll_done:
            return  # 100 Continue, 103 Early Hints: the real answer follows
        self._ll_close_delimited = not self._ll_framed and status not in (204, 304)
        self._ll_in_message = True
        self._on_head(exchange, status, self._ll_headers)

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        if exchange is not None and self._ll_in_message and not self._ll_done:
            self._ll_body.append(body)

    def on_message_complete(self) -> None:
        exchange = self._exchange
        if not self._ll_in_message or exchange is None or self._ll_done:
            return
        self._ll_done = True
        self._ll_keep = self._ll.should_keep_alive()
        if self._ll_body:
            self._ll_flush()
        self._on_end(exchange)

    def encode(self, head: _Head, body: bytes) -> bytes:
        return head.raw + body

    @property
    def reusable(self) -> bool:
        return not self.closed and self._ll_done and self._ll_keep

    def finish_cycle(self, now: float) -> None:
        self._exchange = None
        self._ll_done = False
        self._ll_in_message = False
        self.idle_since = now


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
        self._idle: deque[_Connection] = deque()
        self._all: set[_Connection] = set()
        self._limit = asyncio.Semaphore(max_connections) if max_connections else None
        self._headers_key: object = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._heads: dict[tuple[bytes, int], _Head] = {}
        self._targets: dict[str, bytes] = {}
        parser = PARSER
        if parser == "auto":
            parser = "httptools" if httptools is not None else "h11"
        self._conn_class = _LLConnection if parser == "httptools" else _Connection
        self.connections_opened = 0

    def _request(self, spec: RequestSpec, body: bytes) -> _Head:
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
                head = _Head(
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

    async def _connect(self) -> _Connection:
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

    def _checkout(self, now: float) -> _Connection | None:
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
    ) -> tuple[str, bool]:
        """Run one task; return its text and whether files are incoming.

        Raises:
            AgentFMError: the typed error of the regular path (`IncompleteStreamError`,
                `WorkerRejectedError`, `WorkerNotFoundError`, …); ``task_started`` is set
                when the failure came after a 200.
        """
        if self._limit is None:
            return await self._execute(spec, timeout, idle_timeout, max_output_bytes)
        async with self._limit:
            return await self._execute(spec, timeout, idle_timeout, max_output_bytes)

    async def _execute(
        self,
        spec: RequestSpec,
        timeout: float | None,
        idle_timeout: float | None,
        max_output_bytes: int | None,
    ) -> tuple[str, bool]:
        body = spec.encode_body() or b""
        head = self._request(spec, body)
        loop = asyncio.get_running_loop()
        conn = self._checkout(loop.time()) or await self._connect()
        if conn.closed or conn.transport is None or conn.transport.is_closing():
            # Closed between the check and the write: nothing was written, use a fresh one.
            self._all.discard(conn)
            conn = await self._connect()
        raw = conn.encode(head, body)
        waiter: asyncio.Future[tuple[str, bool]] = loop.create_future()
        conn.start(raw, _Exchange(waiter, max_output_bytes))
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

    def _release(self, conn: _Connection, now: float) -> None:
        if conn.reusable:
            conn.finish_cycle(now)
            self._idle.append(conn)
        else:
            conn.abort()
            self._all.discard(conn)

    @staticmethod
    def _expire(
        conn: _Connection, waiter: asyncio.Future[tuple[str, bool]], timeout: float
    ) -> None:
        if not waiter.done():
            conn._fail(call_timeout_error(timeout))

    def _check_idle(
        self, conn: _Connection, waiter: asyncio.Future[tuple[str, bool]], idle: float
    ) -> None:
        if waiter.done():
            return
        loop = asyncio.get_running_loop()
        silent = loop.time() - conn.last_byte
        if silent >= idle:
            conn._fail(idle_timeout_error(idle))
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
