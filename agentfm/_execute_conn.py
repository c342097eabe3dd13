"""One keep-alive HTTP/1.1 connection of `agentfm._execute_pool`, framed by h11 or llhttp.

`Connection` runs one exchange at a time with h11 (the sans-IO state machine under
httpcore); `LLConnection` is the same connection with llhttp (httptools) doing the framing.
Both refuse malformed framings (bad chunk sizes, a missing chunk CRLF, conflicting
lengths, CR/LF in a header) as a `GatewayProtocolError`, skip 1xx interim replies, know
that 204 and 304 have no body, decode the body with `MarkerDecoder` as it arrives, and map
a broken connection with `error_from_transport`, as the httpx path does.
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Any

import h11
import httpx

try:  # llhttp (C), a mesh dependency: the same framing checks at a tenth of the cost
    import httptools
except ImportError:  # pragma: no cover - h11 alone is enough
    httptools = None  # type: ignore[assignment]

from agentfm._base_client import error_from_response, error_from_transport, output_too_large_error
from agentfm._decoders import decode_whole
from agentfm._streaming import MarkerDecoder
from agentfm.exceptions import AgentFMError, GatewayProtocolError, InvalidRequestError

__all__ = ["Connection", "Exchange", "Head", "LLConnection", "httptools"]

# h11 refuses a response head larger than this (a hostile gateway cannot grow our memory).
_HEAD_LIMIT = 64 * 1024
# Response headers that frame the body (else it ends at EOF).
_FRAMING = (b"content-length", b"transfer-encoding")
# TCP keepalive: a peer that vanished (partition, power loss) is noticed in about
# IDLE + INTERVAL * COUNT seconds instead of never.
_KEEPALIVE_IDLE = 60
_KEEPALIVE_INTERVAL = 10
_KEEPALIVE_COUNT = 6


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


class Head:
    """A request head validated by h11 once, as an h11 event and as bytes."""

    __slots__ = ("event", "raw")

    def __init__(self, event: h11.Request) -> None:
        self.event = event
        scratch = h11.Connection(h11.CLIENT)
        self.raw: bytes = scratch.send(event) or b""


class Exchange:
    """The state of one request/response on a connection."""

    __slots__ = (
        "body",
        "decoder",
        "headers",
        "limit",
        "ok",
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
        self.ok = False  # a 2xx/3xx answer: its body is task output, decoded
        # Made at the first piece of a body that comes in several reads (a body that
        # arrives whole is decoded in one pass by `decode_whole`).
        self.decoder: MarkerDecoder | None = None
        self.parts: list[str] = []
        self.body: list[bytes] = []
        self.received = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection; h11 frames one exchange at a time."""

    def __init__(self, gateway_url: str) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.last_byte = 0.0
        self.got_bytes = False
        self._url = gateway_url
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_HEAD_LIMIT)
        self._exchange: Exchange | None = None
        self._fd = -1
        self._poll: Any = None  # a `select.poll` of this socket alone, where the OS has poll

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only duck-typed.
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _set_keepalive(sock)
            self._fd = sock.fileno()
            if hasattr(select, "poll"):
                # Registered once: a zero-timeout poll per reuse costs half a select.
                self._poll = select.poll()
                self._poll.register(self._fd, select.POLLIN | select.POLLPRI)

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
            self.fail(_malformed(exc))
        except AgentFMError as exc:
            self.fail(exc)

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
            self.fail(error_from_transport(unanswered, gateway_url=self._url))
        else:
            cut = httpx.ReadError(f"the connection broke in the middle of the response: {detail}")
            self.fail(error_from_transport(cut, gateway_url=self._url, phase="body"))

    def _feed_eof(self, exchange: Exchange) -> None:
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
        if self._poll is not None:
            # Any event while idle (readable, hang-up, error, a closed descriptor) means
            # EOF or stray bytes not yet seen by the loop, as select's readable set would.
            try:
                return bool(self._poll.poll(0))
            except (OSError, ValueError):
                return True
        if self._fd >= 0:
            # Readable while idle means EOF (or stray bytes) not yet seen by the loop.
            try:
                readable, _, _ = select.select([self._fd], [], [], 0)
            except (OSError, ValueError):
                return True
            return bool(readable)
        return False

    def start(self, request: bytes, exchange: Exchange) -> None:
        assert self.transport is not None
        self._exchange = exchange
        self.got_bytes = False
        self.last_byte = asyncio.get_running_loop().time()
        self.transport.write(request)

    def encode(self, head: Head, body: bytes) -> bytes:
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

    def fail(self, exc: AgentFMError) -> None:
        exchange = self._exchange
        if exchange is not None and not exchange.waiter.done():
            if exchange.status and 200 <= exchange.status < 300:
                exc.task_started = True
            exchange.waiter.set_exception(exc)
        self.abort()

    def _pump(self, exchange: Exchange) -> None:
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

    def _on_head(self, exchange: Exchange, status: int, headers: Any) -> None:
        exchange.status = status
        exchange.ok = 200 <= status < 400
        if not exchange.ok:
            exchange.headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers
            }

    def _on_data(self, exchange: Exchange, data: bytes) -> None:
        if type(data) is not bytes:  # h11 hands out slices of its bytearray buffer
            data = bytes(data)
        self._count(exchange, data)
        if exchange.ok:
            # Decoded as it arrives: only the text is kept, never the raw body too.
            decoder = exchange.decoder
            if decoder is None:
                decoder = exchange.decoder = MarkerDecoder()
            exchange.parts += decoder.feed(data)
        else:
            exchange.body.append(data)

    @staticmethod
    def _count(exchange: Exchange, data: bytes) -> None:
        exchange.received += len(data)
        if exchange.limit is not None and exchange.received > exchange.limit:
            raise output_too_large_error(exchange.limit)

    def _on_end(self, exchange: Exchange, whole: bytes = b"") -> None:
        """Settle the exchange; ``whole``: the entire body when none of it was fed before."""
        if exchange.waiter.done():
            return
        if not exchange.ok:
            exchange.waiter.set_exception(
                error_from_response(exchange.status, exchange.headers, b"".join(exchange.body))
            )
            return
        decoder = exchange.decoder
        if decoder is None:
            decoded = decode_whole(whole)
            text, error, files_incoming = decoded.text, decoded.error, decoded.files_incoming
        else:
            exchange.parts += decoder.flush()
            text, error = "".join(exchange.parts), decoder.error
            files_incoming = decoder.files_incoming
            exchange.parts.clear()
        if error is not None:
            error.task_started = True
            if text:
                error.partial_text = text  # type: ignore[attr-defined]
            exchange.waiter.set_exception(error)
            return
        exchange.waiter.set_result((text, files_incoming))


class LLConnection(Connection):
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
                self.fail(cause)
            else:  # pragma: no cover - a bug in a callback
                raise
        except httptools.HttpParserError as exc:
            self.fail(_malformed(exc))
        else:
            if self._ll_body:
                try:
                    self._ll_flush()
                except AgentFMError as exc:
                    self.fail(exc)

    def _ll_flush(self) -> None:
        pieces, exchange = self._ll_body, self._exchange
        self._ll_body = []
        if exchange is not None and not exchange.waiter.done():
            self._on_data(exchange, pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _feed_eof(self, exchange: Exchange) -> None:
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
        pieces = self._ll_body
        if pieces and exchange.decoder is None and exchange.ok and not exchange.waiter.done():
            # The whole body came in this read: decoded in one pass, not line by line.
            self._ll_body = []
            whole = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            self._count(exchange, whole)
            self._on_end(exchange, whole)
            return
        if pieces:
            self._ll_flush()
        self._on_end(exchange)

    def encode(self, head: Head, body: bytes) -> bytes:
        return head.raw + body

    @property
    def reusable(self) -> bool:
        return not self.closed and self._ll_done and self._ll_keep

    def finish_cycle(self, now: float) -> None:
        self._exchange = None
        self._ll_done = False
        self._ll_in_message = False
        self.idle_since = now
