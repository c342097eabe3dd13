"""`ExecutePool`, scatter's lean HTTP/1.1 client, against loopback servers that misbehave.

Each server writes raw bytes, so framing edge cases (a marker split across reads, a body
cut mid-chunk, a silent close) are produced for real rather than mocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agentfm import (
    AgentFMTimeoutError,
    GatewayConnectionError,
    IncompleteStreamError,
    WorkerNotFoundError,
    WorkerRejectedError,
    WorkerStreamError,
)
from agentfm._base_client import RequestSpec
from agentfm._execute_pool import ExecutePool, supports

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
