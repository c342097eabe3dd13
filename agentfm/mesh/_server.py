"""The HTTP server under the gateway, set up as Go's: uvicorn on uvloop with httptools,
Go's request-head limits, and the open-files limit raised as Go's runtime raises it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (the `mesh` extra), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


HEAD_LIMIT = 1 << 20
"""Bytes a request head may take: Go's ``http.DefaultMaxHeaderBytes`` (1 MB)."""
HEAD_TIMEOUT = 10.0
"""Seconds a client has to send a whole request head: the Go gateway's ``ReadHeaderTimeout``."""

_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"431 Request Header Fields Too Large"
)


def http_protocol(head_timeout: float) -> Any:
    """The HTTP protocol for uvicorn: httptools with Go's head limits, else plain h11.

    uvicorn has no head-size cap for httptools (a huge head is parsed, slower than
    linearly, before any route or auth runs) and no deadline for a head that never
    completes. The subclass adds both, as Go's server has them: past 1 MB the client gets
    Go's 431 and the connection closes; a head not complete within ``head_timeout`` has
    its connection closed without an answer (Go sends none either). The h11 fallback
    gets the size cap through uvicorn's own option.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "h11"

    class GuardedHttpTools(HttpToolsProtocol):
        _head_bytes = 0
        _in_head = True
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._begin_head()

        def _begin_head(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(head_timeout, self._head_timed_out)

        def _end_head(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if not self._in_head:  # the next request on a kept-alive connection
                self._begin_head()

        def on_headers_complete(self) -> None:
            self._end_head()
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return  # refused already: parse nothing more
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > HEAD_LIMIT and not self.transport.is_closing():
                self.transport.write(_HEAD_TOO_LARGE)
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

    return GuardedHttpTools


def raise_nofile_limit() -> tuple[int, int] | None:
    """Raise the soft open-files limit to the hard one, as Go's runtime does at start.

    Returns the limits as they were (None where there is no such limit), so child
    processes can be given the original soft limit back, as Go does for ``exec``.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard
