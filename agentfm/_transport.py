"""Transport configuration and connection pooling, resolved once for both HTTP paths.

`resolve_proxy` decides, once per client, whether a proxy applies to the gateway (the
``proxy=`` option, else ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` as httpx reads them):
the httpx transports route through it and scatter's lean path steps aside for it.
`tls_context` builds at most one TLS context per client, and none worth the name for a
plain ``http://`` gateway (loading the CA bundle costs about 0.1 s per context).

Pooling: many small httpx pools instead of one large one.

httpx's connection pool re-scans every queued request against every connection each time a
request starts or finishes, so its CPU cost per request grows with concurrency. A sharded
transport keeps each pool at `POOL_SHARD_SIZE` connections and routes each request to the
least-busy shard, adding shards as concurrency grows; the total is bounded only by
``max_connections`` (unbounded by default, so ``max_concurrency`` is what limits a scatter).
"""

from __future__ import annotations

import ssl
import threading
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from agentfm._constants import KEEPALIVE_EXPIRY, POOL_SHARD_SIZE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

__all__ = [
    "AsyncShardedTransport",
    "ShardedTransport",
    "resolve_proxy",
    "tls_context",
]


def resolve_proxy(
    gateway_url: str, proxy: str | httpx.URL | httpx.Proxy | None = None
) -> httpx.Proxy | None:
    """The proxy that applies to ``gateway_url``, or None to connect directly.

    An explicit ``proxy`` wins. Otherwise the environment is read the way httpx reads it
    for a client built without ``transport=``: ``HTTP_PROXY``/``HTTPS_PROXY`` by scheme,
    then ``ALL_PROXY``, unless ``NO_PROXY`` covers the host. (The SDK passes its own
    transport, which makes httpx skip the environment, so it is resolved here instead.)
    """
    if proxy is not None:
        return proxy if isinstance(proxy, httpx.Proxy) else httpx.Proxy(proxy)
    parts = urlsplit(gateway_url)
    proxies = urllib.request.getproxies()
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    if not chosen or (parts.hostname and urllib.request.proxy_bypass(parts.hostname)):
        return None
    if "://" not in chosen:
        chosen = "http://" + chosen  # httpx reads a bare host:port as http://
    return httpx.Proxy(chosen)


def tls_context(gateway_url: str, verify: bool | str | ssl.SSLContext = True) -> ssl.SSLContext:
    """One TLS context for every pool of a client.

    httpx builds a verifying context (CA bundle loaded) per transport unless handed one;
    a plain ``http://`` gateway never does TLS, so it gets a bare context that costs
    nothing to build. A proxy's own TLS (``https://`` proxy) is configured on the proxy.
    """
    if isinstance(verify, ssl.SSLContext):
        return verify
    if urlsplit(gateway_url).scheme != "https":
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return httpx.create_ssl_context(verify=verify)


class _Options:
    __slots__ = ("proxy", "verify")

    def __init__(self, proxy: httpx.Proxy | None, verify: ssl.SSLContext | None) -> None:
        self.proxy = proxy
        self.verify = verify

    def kwargs(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.proxy is not None:
            out["proxy"] = self.proxy
        if self.verify is not None:
            out["verify"] = self.verify
        return out


def _next_shard_size(shards: list[_Shard], size: int, max_connections: int | None) -> int:
    """Size of a new shard: the usual size, or what is left of ``max_connections`` (0: none)."""
    if max_connections is None:
        return size
    return max(0, min(size, max_connections - sum(s.size for s in shards)))


def _shard_limits(size: int) -> httpx.Limits:
    return httpx.Limits(
        max_connections=size, max_keepalive_connections=size, keepalive_expiry=KEEPALIVE_EXPIRY
    )


class _Shard:
    __slots__ = ("in_flight", "size", "transport")

    def __init__(
        self, transport: httpx.BaseTransport | httpx.AsyncBaseTransport, size: int
    ) -> None:
        self.transport = transport
        self.size = size
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


class _Shards:
    """The shard set of one transport: which pool takes the next request (no I/O, no lock).

    ``make`` builds an httpx transport of ``size`` connections with the client's proxy and
    TLS settings; the sync and async transports differ only in the class it builds.
    """

    __slots__ = ("_make", "_max", "_options", "_size", "shards")

    def __init__(
        self,
        make: Callable[..., httpx.BaseTransport | httpx.AsyncBaseTransport],
        shard_size: int,
        max_connections: int | None,
        proxy: httpx.Proxy | None,
        verify: ssl.SSLContext | None,
    ) -> None:
        self._make = make
        self._options = _Options(proxy, verify).kwargs()
        self._size = shard_size
        self._max = max_connections
        self.shards: list[_Shard] = []

    def acquire(self) -> _Shard:
        """The least-busy shard, or a new one while ``max_connections`` leaves room."""
        best = min(self.shards, key=lambda s: s.in_flight / s.size, default=None)
        if best is None or best.in_flight >= best.size:
            size = _next_shard_size(self.shards, self._size, self._max)
            if size:
                best = _Shard(self._make(limits=_shard_limits(size), **self._options), size)
                self.shards.append(best)
        assert best is not None
        best.in_flight += 1
        return best

    def take_all(self) -> list[_Shard]:
        shards, self.shards = self.shards, []
        return shards


class ShardedTransport(httpx.BaseTransport):
    """A thread-safe sync transport made of small connection pools.

    Example:
        ```python
        http = httpx.Client(transport=ShardedTransport(), base_url=url)
        ```
    """

    def __init__(
        self,
        *,
        max_connections: int | None = None,
        shard_size: int = POOL_SHARD_SIZE,
        proxy: httpx.Proxy | None = None,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self._shards = _Shards(httpx.HTTPTransport, shard_size, max_connections, proxy, verify)
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            shard = self._shards.acquire()
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
            shards = self._shards.take_all()
        for shard in shards:
            transport = shard.transport
            assert isinstance(transport, httpx.BaseTransport)
            transport.close()


class AsyncShardedTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of `ShardedTransport` (one event loop, so no lock)."""

    def __init__(
        self,
        *,
        max_connections: int | None = None,
        shard_size: int = POOL_SHARD_SIZE,
        proxy: httpx.Proxy | None = None,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self._shards = _Shards(httpx.AsyncHTTPTransport, shard_size, max_connections, proxy, verify)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        shard = self._shards.acquire()
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
        for shard in self._shards.take_all():
            transport = shard.transport
            assert isinstance(transport, httpx.AsyncBaseTransport)
            await transport.aclose()
