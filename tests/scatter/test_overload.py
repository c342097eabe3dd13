"""Scatter honours ``503 mesh_overloaded`` + ``Retry-After`` instead of failing items.

The embedded mesh only answers 503 on its OpenAI routes, so a small loopback HTTP server
plays a gateway whose task route is overloaded for its first requests. No mocks: both the
lean connection pool and the httpx path talk to it over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"
RETRY_AFTER = 0.3
OVERLOADED = json.dumps(
    {"error": {"message": "all workers busy", "type": "server_error", "code": "mesh_overloaded"}}
).encode()


class OverloadedGateway:
    """Answers ``503`` + ``Retry-After`` to the first ``busy`` task requests, then runs them."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, status sent)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._writers: list[asyncio.StreamWriter] = []

    def __enter__(self) -> OverloadedGateway:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._ready.set()
        self._loop.run_forever()
        server.close()
        for writer in self._writers:
            writer.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.run_until_complete(asyncio.sleep(0))
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next(
                    (int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length")),
                    0,
                )
                body = await reader.readexactly(length)
                writer.write(self._answer(lines[0], body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _answer(self, request_line: str, body: bytes) -> bytes:
        if not request_line.startswith("POST /api/execute "):
            text = b"404 page not found\n"
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text)
        if self.busy > 0:
            self.busy -= 1
            self.arrivals.append((time.monotonic(), 503))
            return (
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Retry-After: %s\r\nContent-Length: %d\r\n\r\n%s"
                % (str(RETRY_AFTER).encode(), len(OVERLOADED), OVERLOADED)
            )
        self.arrivals.append((time.monotonic(), 200))
        prompt = json.loads(body)["prompt"]
        out = f"done {prompt}\n\n[AGENTFM: NO_FILES]\n".encode()
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(out), out)
        )


@pytest.fixture
def gateway() -> Iterator[OverloadedGateway]:
    with OverloadedGateway(busy=2) as running:
        yield running


@pytest.fixture(params=["sync", "async"])
async def overloaded_client(
    request: pytest.FixtureRequest, gateway: OverloadedGateway
) -> AsyncIterator[Any]:
    from agentfm import AgentFMClient, AsyncAgentFMClient

    if request.param == "sync":
        with AgentFMClient(gateway.url, api_key=None, retries=0) as c:
            yield c
    else:
        async with AsyncAgentFMClient(gateway.url, api_key=None, retries=0) as c:
            yield c


async def test_retry_after_is_honoured_and_items_do_not_fail(
    overloaded_client: Any, gateway: OverloadedGateway, transport_path: str
) -> None:
    results = await call(
        overloaded_client.tasks.scatter,
        ["a", "b", "c"],
        peer_ids=[PEER],
        max_concurrency=1,
        max_retries=0,  # no retry budget: only the overload handling can save the items
    )
    assert [r.text for r in results] == ["done a\n", "done b\n", "done c\n"]
    assert all(r.ok and r.attempts == 1 for r in results)
    statuses = [status for _, status in gateway.arrivals]
    assert statuses == [503, 503, 200, 200, 200]
    # Each request after a 503 waited at least the Retry-After it was given.
    for (when, status), (after, _) in zip(gateway.arrivals, gateway.arrivals[1:], strict=False):
        if status == 503:
            assert after - when >= RETRY_AFTER
