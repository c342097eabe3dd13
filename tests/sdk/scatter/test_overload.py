"""Scatter's retry rules for answers the embedded mesh cannot give on its task route.

``503 mesh_overloaded`` + ``Retry-After`` is requeued within the caller's ``max_retries``;
``429 rate_limited`` is final and ends the batch; a plain 404 "Worker not found" is not asked
again. A small loopback HTTP server plays the gateway and counts the requests it receives.
No mocks: both the lean connection pool and the httpx path talk to it over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from agentfm import GatewayConnectionError, RateLimitError, WorkerNotFoundError
from tests.helpers import call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"
RETRY_AFTER = 0.3
OVERLOADED = json.dumps(
    {"error": {"message": "all workers busy", "type": "server_error", "code": "mesh_overloaded"}}
).encode()


RATE_LIMITED = json.dumps(
    {"error": {"message": "too many failed auth attempts", "code": "rate_limited"}}
).encode()


class OverloadedGateway:
    """Answers ``refusal`` to the first ``busy`` task requests, then runs them.

    ``refusal`` is ``"overloaded"`` (503 + ``Retry-After``), ``"rate_limited"`` (429 +
    ``Retry-After: 60``) or ``"missing"`` (plain 404 "Worker not found or offline").
    """

    def __init__(self, busy: int, refusal: str = "overloaded") -> None:
        self.busy = busy
        self.refusal = refusal
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
        if self.busy > 0 and self.refusal == "rate_limited":
            self.busy -= 1
            self.arrivals.append((time.monotonic(), 429))
            return (
                b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                b"Retry-After: 60\r\nContent-Length: %d\r\n\r\n%s"
                % (len(RATE_LIMITED), RATE_LIMITED)
            )
        if self.busy > 0 and self.refusal == "missing":
            self.busy -= 1
            self.arrivals.append((time.monotonic(), 404))
            text = b"Worker not found or offline\n"
            return (
                b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(text), text)
            )
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


async def test_retry_after_is_honoured_within_the_retry_budget(
    overloaded_client: Any, gateway: OverloadedGateway, transport_path: str
) -> None:
    results = await call(
        overloaded_client.tasks.scatter,
        ["a", "b", "c"],
        peer_ids=[PEER],
        max_concurrency=1,
        max_retries=2,
    )
    assert [r.text for r in results] == ["done a\n", "done b\n", "done c\n"]
    # The two overload answers used two of "a"'s three attempts, and show.
    assert [r.attempts for r in results] == [3, 1, 1]
    statuses = [status for _, status in gateway.arrivals]
    assert statuses == [503, 503, 200, 200, 200]
    # Each request after a 503 waited at least the Retry-After it was given.
    for (when, status), (after, _) in zip(gateway.arrivals, gateway.arrivals[1:], strict=False):
        if status == 503:
            assert after - when >= RETRY_AFTER


async def test_overload_requeues_are_bounded_by_max_retries(
    overloaded_client: Any, gateway: OverloadedGateway, transport_path: str
) -> None:
    gateway.busy = 100
    results = await call(
        overloaded_client.tasks.scatter, ["a", "b"], peer_ids=[PEER], max_retries=1
    )
    assert [r.status for r in results] == ["failed", "failed"]
    assert all(r.attempts == 2 for r in results)
    assert len(gateway.arrivals) == 4  # 2 items x (1 + max_retries), not 9 each


@pytest.mark.parametrize("max_retries", [0, 2])
async def test_rate_limited_is_final_and_ends_the_batch(
    overloaded_client: Any, transport_path: str, max_retries: int
) -> None:
    with OverloadedGateway(busy=100, refusal="rate_limited") as limited:
        client = overloaded_client.with_options(gateway_url=limited.url)
        results = await call(
            client.tasks.scatter,
            [f"p{i}" for i in range(6)],
            peer_ids=[PEER],
            max_concurrency=1,
            max_retries=max_retries,
        )
        await call(client.close)
    assert [r.index for r in results] == list(range(6))
    assert all(isinstance(r.exception, RateLimitError) for r in results)
    # One request reached the gateway: no 60 s Retry-After pause, nothing else sent.
    assert [status for _, status in limited.arrivals] == [429]


async def test_a_missing_worker_is_asked_once_per_prompt(
    overloaded_client: Any, transport_path: str
) -> None:
    with OverloadedGateway(busy=100, refusal="missing") as missing:
        client = overloaded_client.with_options(gateway_url=missing.url)
        results = await call(client.tasks.scatter, ["a", "b", "c"], peer_ids=[PEER], max_retries=2)
        await call(client.close)
    assert all(isinstance(r.exception, WorkerNotFoundError) for r in results)
    assert [r.attempts for r in results] == [1, 1, 1]
    assert [status for _, status in missing.arrivals] == [404, 404, 404]


async def test_a_dead_gateway_fails_the_rest_fast(
    unused_tcp_port: int, transport_path: str
) -> None:
    from agentfm import AgentFMClient

    with AgentFMClient(f"http://127.0.0.1:{unused_tcp_port}", api_key=None, retries=0) as c:
        results = c.tasks.scatter(
            [f"p{i}" for i in range(200)], peer_ids=[PEER], max_concurrency=1, max_retries=2
        )
    assert [r.index for r in results] == list(range(200))
    assert all(isinstance(r.exception, GatewayConnectionError) for r in results)
    # Refused connections back off, and after 5 s the rest fail without being sent:
    # a handful of attempts in all, not 200 x 3.
    assert sum(r.attempts for r in results) <= 8
