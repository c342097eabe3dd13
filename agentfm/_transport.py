"""Connection pooling: many small httpx pools instead of one large one.

httpx's connection pool re-scans every queued request against every connection each time a
request starts or finishes, so its CPU cost per request grows with concurrency. A sharded
transport keeps each pool at `POOL_SHARD_SIZE` connections and routes each request to the
least-busy shard, adding shards as concurrency grows; the total is bounded only by
``max_connections`` (unbounded by default, so ``max_concurrency`` is what limits a scatter).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import httpx

from agentfm._constants import KEEPALIVE_EXPIRY, POOL_SHARD_SIZE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

__all__ = ["AsyncShardedTransport", "ShardedTransport"]


def _shard_limits(size: int) -> httpx.Limits:
    return httpx.Limits(
        max_connections=size, max_keepalive_connections=size, keepalive_expiry=KEEPALIVE_EXPIRY
    )


def _shard_count_cap(max_connections: int | None, size: int) -> int | None:
    if max_connections is None:
        return None
    return max(1, -(-max_connections // size))


class _Shard:
    __slots__ = ("in_flight", "transport")

    def __init__(self, transport: httpx.BaseTransport | httpx.AsyncBaseTransport) -> None:
        self.transport = transport
        self.in_flight = 0


class _SyncTrackedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, release: _Release) -> None:
        self._inner = inner
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._release()


class _AsyncTrackedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, release: _Release) -> None:
        self._inner = inner
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._release()


class _Release:
    """Give a shard's slot back exactly once (response closed or request failed)."""

    __slots__ = ("_done", "_lock", "_shard")

    def __init__(self, shard: _Shard, lock: threading.Lock | None) -> None:
        self._shard = shard
        self._lock = lock
        self._done = False

    def __call__(self) -> None:
        if self._lock is None:
            if not self._done:
                self._done = True
                self._shard.in_flight -= 1
            return
        with self._lock:
            if not self._done:
                self._done = True
                self._shard.in_flight -= 1


class ShardedTransport(httpx.BaseTransport):
    """A thread-safe sync transport made of small connection pools.

    Example:
        ```python
        http = httpx.Client(transport=ShardedTransport(), base_url=url)
        ```
    """

    def __init__(
        self, *, max_connections: int | None = None, shard_size: int = POOL_SHARD_SIZE
    ) -> None:
        if max_connections is not None:
            shard_size = min(shard_size, max_connections)
        self._size = shard_size
        self._cap = _shard_count_cap(max_connections, shard_size)
        self._lock = threading.Lock()
        self._shards: list[_Shard] = []

    def _acquire(self) -> _Shard:
        with self._lock:
            best = min(self._shards, key=lambda s: s.in_flight, default=None)
            if best is None or (
                best.in_flight >= self._size
                and (self._cap is None or len(self._shards) < self._cap)
            ):
                best = _Shard(httpx.HTTPTransport(limits=_shard_limits(self._size)))
                self._shards.append(best)
            best.in_flight += 1
            return best

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        shard = self._acquire()
        release = _Release(shard, self._lock)
        try:
            transport = shard.transport
            assert isinstance(transport, httpx.BaseTransport)
            response = transport.handle_request(request)
        except BaseException:
            release()
            raise
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        response.stream = _SyncTrackedStream(stream, release)
        return response

    def close(self) -> None:
        with self._lock:
            shards, self._shards = self._shards, []
        for shard in shards:
            transport = shard.transport
            assert isinstance(transport, httpx.BaseTransport)
            transport.close()


class AsyncShardedTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of `ShardedTransport` (one event loop, so no lock)."""

    def __init__(
        self, *, max_connections: int | None = None, shard_size: int = POOL_SHARD_SIZE
    ) -> None:
        if max_connections is not None:
            shard_size = min(shard_size, max_connections)
        self._size = shard_size
        self._cap = _shard_count_cap(max_connections, shard_size)
        self._shards: list[_Shard] = []

    def _acquire(self) -> _Shard:
        best = min(self._shards, key=lambda s: s.in_flight, default=None)
        if best is None or (
            best.in_flight >= self._size and (self._cap is None or len(self._shards) < self._cap)
        ):
            best = _Shard(httpx.AsyncHTTPTransport(limits=_shard_limits(self._size)))
            self._shards.append(best)
        best.in_flight += 1
        return best

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = self._acquire()
        release = _Release(shard, None)
        try:
            transport = shard.transport
            assert isinstance(transport, httpx.AsyncBaseTransport)
            response = await transport.handle_async_request(request)
        except BaseException:
            release()
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _AsyncTrackedStream(stream, release)
        return response

    async def aclose(self) -> None:
        shards, self._shards = self._shards, []
        for shard in shards:
            transport = shard.transport
            assert isinstance(transport, httpx.AsyncBaseTransport)
            await transport.aclose()
