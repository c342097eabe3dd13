"""`ExecutePool`, scatter's lean HTTP/1.1 client, against loopback servers that misbehave.

Each server writes raw bytes, so framing edge cases (a marker split across reads, a body
cut mid-chunk, a silent close) are produced for real rather than mocked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agentfm import (
    AgentFMTimeoutError,
    GatewayConnectionError,
    GatewayProtocolError,
    IncompleteStreamError,
    InvalidRequestError,
    OutputTooLargeError,
    WorkerNotFoundError,
    WorkerRejectedError,
    WorkerStreamError,
)
from agentfm._base_client import RequestSpec
from agentfm._execute_pool import ExecutePool, supports


@pytest.fixture(autouse=True, params=["h11", "httptools"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case runs with both framings the lean path can use."""
    monkeypatch.setattr("agentfm._execute_pool.PARSER", request.param)
    return str(request.param)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


class Pool:
    """`ExecutePool` with the task request the clients build (`RequestSpec`)."""

    def __init__(self, url: str, headers: dict[str, str], **options: Any) -> None:
        self.url = url
        self.headers = headers
        self.pool = ExecutePool(url, **options)

    async def execute(
        self, peer: str, prompt: str, task_id: str, timeout: float | None, **options: Any
    ) -> tuple[str, bool]:
        spec = RequestSpec(
            "POST",
            self.url + "/api/execute",
            json={"worker_id": peer, "prompt": prompt, "task_id": task_id},
            headers=self.headers,
        )
        return await self.pool.execute(spec, timeout=timeout, **options)

    def close(self) -> None:
        self.pool.close()


def chunked(*pieces: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n"


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self._writers.append(writer)
            try:
                await self.handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


async def run(handler: Handler, *, timeout: float | None = None, calls: int = 1) -> Any:
    async with Server(handler) as url:
        pool = Pool(url, {"Authorization": "Bearer k"}, connect_timeout=5)
        try:
            out = [await pool.execute("peer", "hi", f"task_{n}", timeout) for n in range(calls)]
        finally:
            pool.close()
            await asyncio.sleep(0)
        return out


async def test_a_marker_split_across_reads_still_ends_the_task() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert b"Authorization: Bearer k" in request
        assert b'"worker_id": "peer"' in request
        whole = chunked(b"hello w", b"orld\n", b"\n[AGENTFM: FILES_", b"INCOMING]\n")
        for n in range(0, len(whole), 3):  # three bytes per write
            writer.write(whole[n : n + 3])
            await writer.drain()
            await asyncio.sleep(0)

    [(text, files)] = await run(handler)
    assert text == "hello world\n"
    assert files is True


async def test_a_sized_body_and_keep_alive_reuse() -> None:
    server_state = {"served": 0}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            body = b"ok\n\n[AGENTFM: NO_FILES]\n"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            server_state["served"] += 1

    async with Server(handler) as url:
        pool = Pool(url, {}, connect_timeout=5)
        try:
            results = [await pool.execute("p", "x", f"task_{n}", None) for n in range(3)]
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert results == [("ok\n", False)] * 3
    assert server_state["served"] == 3


async def test_keep_alive_uses_one_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(chunked(b"ok\n\n[AGENTFM: NO_FILES]\n"))

    server = Server(handler)
    async with server as url:
        pool = Pool(url, {}, connect_timeout=5)
        try:
            for n in range(3):
                await pool.execute("p", "x", f"task_{n}", None)
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert server.connections == 1


async def test_a_body_cut_mid_chunk_is_a_broken_stream() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\npartial")
        await writer.drain()

    with pytest.raises(WorkerStreamError) as caught:
        await run(handler)
    assert caught.value.task_started


async def test_a_clean_end_without_marker_is_incomplete() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked(b"working on it\n"))

    with pytest.raises(IncompleteStreamError):
        await run(handler)


async def test_a_rejection_line_is_an_error_not_text() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked("❌ ERROR: Worker is at max capacity (4/4).\n".encode()))

    with pytest.raises(WorkerRejectedError):
        await run(handler)


async def test_plain_text_errors_are_typed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b"Worker not found or offline\n"
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )

    with pytest.raises(WorkerNotFoundError):
        await run(handler)


async def test_a_silent_close_is_a_connection_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    with pytest.raises(GatewayConnectionError) as caught:
        await run(handler)
    assert not caught.value.task_started


async def test_the_attempt_timeout_is_enforced() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    with pytest.raises(AgentFMTimeoutError):
        await run(handler, timeout=0.2)


def test_only_plain_http_without_a_proxy_takes_the_lean_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert supports("http://127.0.0.1:8080")
    assert not supports("https://gateway.example:443")
    assert not supports("http://host:8080/prefix")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert not supports("http://gateway.example:8080")
    monkeypatch.setenv("NO_PROXY", "gateway.example")
    assert supports("http://gateway.example:8080")


async def test_max_connections_caps_the_pool() -> None:
    state = {"now": 0, "peak": 0}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            await asyncio.sleep(0.01)
            state["now"] -= 1
            writer.write(chunked(b"ok\n\n[AGENTFM: NO_FILES]\n"))

    server = Server(handler)
    async with server as url:
        pool = Pool(url, {}, connect_timeout=5, max_connections=2)
        try:
            results = await asyncio.gather(
                *(pool.execute("p", "x", f"task_{n}", None) for n in range(8))
            )
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert results == [("ok\n", False)] * 8
    assert server.connections <= 2
    assert state["peak"] <= 2


async def test_the_client_s_max_connections_caps_a_scatter() -> None:
    # The cap is the client's option: scatter's fast path must receive it, not only the pool.
    from agentfm import AsyncAgentFMClient
    from agentfm._fast_path import use_fast_path

    state = {"posting": 0, "now": 0, "peak": 0}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        posted = False
        while True:
            request = await read_request(reader)
            if request.startswith(b"GET "):  # telemetry: none here, scatter goes on without
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 18\r\n\r\n")
                writer.write(b"404 page not found")
                continue
            if not posted:
                posted = True
                state["posting"] += 1
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            await asyncio.sleep(0.01)
            state["now"] -= 1
            writer.write(chunked(b"ok\n\n[AGENTFM: NO_FILES]\n"))

    server = Server(handler)
    async with server as url, AsyncAgentFMClient(url, api_key=None, max_connections=2) as client:
        assert use_fast_path(client)
        results = await client.tasks.scatter(
            [f"p{n}" for n in range(8)], peer_ids=["peer"], max_concurrency=8, max_retries=0
        )
    assert [r.text for r in results] == ["ok\n"] * 8
    assert state["posting"] <= 2
    assert state["peak"] <= 2


@pytest.mark.parametrize("status", [b"201 Created", b"203 Non-Authoritative Information"])
async def test_a_2xx_other_than_200_is_read_as_the_httpx_path_reads_it(status: bytes) -> None:
    # The httpx path decodes any status below 400; the fast path once failed every non-200.
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked(b"ok\n\n[AGENTFM: NO_FILES]\n").replace(b"200 OK", status, 1))

    [(text, files)] = await run(handler)
    assert (text, files) == ("ok\n", False)


# -- malformed framing (issue #15 item 1, #16 probes): h11 refuses, typed, in bounded time --

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def replies(raw: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(raw)
        await writer.drain()
        await asyncio.sleep(30)  # keep the socket open: only the framing may end the task

    return handler


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(HEAD + b"-6\r\nhello\r\n0\r\n\r\n", id="negative-chunk-size"),
        pytest.param(HEAD + b" 0_6 \r\nhello \r\n0\r\n\r\n", id="underscore-chunk-size"),
        pytest.param(HEAD + b"zz\r\nhello\r\n0\r\n\r\n", id="garbage-chunk-size"),
        pytest.param(HEAD + b"5\r\nhelloXX0\r\n\r\n", id="missing-chunk-crlf"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 30\r\n\r\nhello",
            id="conflicting-content-length",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", id="cr-in-header-value"
        ),
        pytest.param(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", id="bad-status-line"),
    ],
)
async def test_malformed_framing_is_a_typed_protocol_error(raw: bytes) -> None:
    with pytest.raises(GatewayProtocolError) as caught:
        await asyncio.wait_for(run(replies(raw)), 10)
    assert caught.value.code == "bad_response"


@pytest.mark.timeout(20)
async def test_negative_chunk_size_does_not_block_the_event_loop() -> None:
    # The old parser spun on `int("-6", 16)`; a ticker on the same loop proves it yields.
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    tick = asyncio.ensure_future(ticker())
    try:
        with pytest.raises(GatewayProtocolError):
            await asyncio.wait_for(run(replies(HEAD + b"-6\r\nhello\r\n")), 10)
    finally:
        tick.cancel()
    assert ticks >= 1


# -- interim and bodyless replies (item 2) ----------------------------------------------


@pytest.mark.timeout(20)
async def test_interim_replies_are_skipped() -> None:
    body = b"ok\n\n[AGENTFM: NO_FILES]\n"
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n" + chunked(body)
    )
    [(text, files)] = await asyncio.wait_for(run(replies(raw)), 10)
    assert (text, files) == ("ok\n", False)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
async def test_bodyless_statuses_end_without_waiting_for_close(status: bytes) -> None:
    # No length, keep-alive: the old parser read until a close that never came.
    raw = b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n\r\n"
    with pytest.raises(IncompleteStreamError):  # a 2xx/3xx without the marker, as via httpx
        await asyncio.wait_for(run(replies(raw)), 10)


# -- connection reuse (item 8, #16 stale keep-alive) -------------------------------------


class ThreadServer:
    """A blocking server on its own thread: answers, then closes each connection at once.

    It never sends ``Connection: close``, so the client learns of the close only from the
    FIN, which is already queued when the next request wants a connection.
    """

    def __init__(self, reply: bytes) -> None:
        import socket
        import threading

        self.reply = reply
        self.requests = 0
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests += 1
                conn.sendall(self.reply)

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.mark.timeout(30)
async def test_a_connection_the_server_closed_is_not_reused() -> None:
    reply = chunked(b"ok\n\n[AGENTFM: NO_FILES]\n")
    with ThreadServer(reply) as server:
        pool = Pool(server.url, {}, connect_timeout=5)
        try:
            for n in range(40):
                # Let the server's FIN land while the loop is busy (as on a loaded scatter),
                # so the loop has not seen it when the next request picks a connection.
                time.sleep(0.005)  # noqa: ASYNC251 - blocking on purpose
                assert await pool.execute("p", "x", f"task_{n}", None) == ("ok\n", False)
        finally:
            pool.close()
    assert server.requests == 40  # every request reached the server exactly once


async def test_idle_connections_expire_below_the_server_keep_alive() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(chunked(b"ok\n\n[AGENTFM: NO_FILES]\n"))

    server = Server(handler)
    async with server as url:
        pool = Pool(url, {}, connect_timeout=5, keepalive_expiry=0.05)
        try:
            await pool.execute("p", "x", "task_1", None)
            await asyncio.sleep(0.1)
            await pool.execute("p", "x", "task_2", None)
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert server.connections == 2


async def test_sockets_have_tcp_keepalive() -> None:
    import socket

    seen: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked(b"ok\n\n[AGENTFM: NO_FILES]\n"))

    async with Server(handler) as url:
        pool = Pool(url, {}, connect_timeout=5)
        try:
            await pool.execute("p", "x", "task_1", None)
            for conn in pool.pool._all:
                assert conn.transport is not None
                sock = conn.transport.get_extra_info("socket")
                seen.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert seen
    assert all(seen)


# -- the request: same spec as the httpx path -------------------------------------------


async def test_header_values_with_cr_lf_are_refused_before_sending() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked(b"ok\n\n[AGENTFM: NO_FILES]\n"))

    server = Server(handler)
    async with server as url:
        pool = Pool(url, {"X-Evil": "a\r\nX-Injected: 1"}, connect_timeout=5)
        try:
            with pytest.raises(InvalidRequestError):
                await pool.execute("p", "x", "task_1", None)
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert server.requests == []


async def test_the_body_cap_of_request_spec_applies() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    server = Server(handler)
    async with server as url:
        pool = Pool(url, {}, connect_timeout=5)
        try:
            with pytest.raises(InvalidRequestError) as caught:
                await pool.execute("p", "x" * (1024 * 1024 + 1), "task_1", None)
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert caught.value.code == "request_too_large"
    assert server.connections == 0


# -- bounds: idle (item 5) and output size (item 9) --------------------------------------


@pytest.mark.timeout(20)
async def test_a_silent_stream_hits_idle_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD + b"3\r\nhi\n\r\n")  # a 200 and a first byte, then silence
        await writer.drain()
        await asyncio.sleep(30)

    async with Server(handler) as url:
        pool = Pool(url, {}, connect_timeout=5)
        try:
            with pytest.raises(AgentFMTimeoutError) as caught:
                await pool.execute("p", "x", "task_1", None, idle_timeout=0.3)
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert "idle_timeout" in str(caught.value)
    assert caught.value.task_started


@pytest.mark.timeout(20)
async def test_a_trickling_stream_is_not_idle() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD)
        for _ in range(8):
            await asyncio.sleep(0.1)
            writer.write(b"2\r\n.\n\r\n")
            await writer.drain()
        writer.write(b"15\r\n\n[AGENTFM: NO_FILES]\n\r\n0\r\n\r\n")

    async with Server(handler) as url:
        pool = Pool(url, {}, connect_timeout=5)
        try:
            text, _ = await pool.execute("p", "x", "task_1", None, idle_timeout=0.35)
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert text == ".\n" * 8


async def test_max_output_bytes_fails_the_task() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(chunked(b"x" * 5000, b"\n[AGENTFM: NO_FILES]\n"))

    async with Server(handler) as url:
        pool = Pool(url, {}, connect_timeout=5)
        try:
            with pytest.raises(OutputTooLargeError) as caught:
                await pool.execute("p", "x", "task_1", None, max_output_bytes=1000)
            assert await pool.execute("p", "x", "task_2", None, max_output_bytes=10_000)
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert caught.value.code == "output_too_large"
    assert caught.value.task_started


async def test_a_close_delimited_body_still_completes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nold style\n\n[AGENTFM: NO_FILES]\n")
        await writer.drain()
        writer.close()

    [(text, files)] = await asyncio.wait_for(run(handler, calls=1), 10)
    assert (text, files) == ("old style\n", False)


async def test_connection_close_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b"ok\n\n[AGENTFM: NO_FILES]\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )

    server = Server(handler)
    async with server as url:
        pool = Pool(url, {}, connect_timeout=5)
        try:
            for n in range(3):
                assert await pool.execute("p", "x", f"task_{n}", None) == ("ok\n", False)
        finally:
            pool.close()
            await asyncio.sleep(0)
    assert server.connections == 3
