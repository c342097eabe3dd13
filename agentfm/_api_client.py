"""The configuration and I/O drivers behind both clients, as openai-python's base client.

`BaseAPIClient` holds what the two clients share and does no I/O: one constructor, the
headers, request preparation and `with_options`. `SyncAPIClient` and `AsyncAPIClient` add
only the I/O, each method a short driver over the pure decisions of `agentfm._base_client`
(what to send, what a response means, whether to retry) and the sans-IO decoders:

- ``request`` / ``request_json``: one call under the retry policy;
- ``stream(spec, decoder, parse)``: open a stream, feed the decoder, flush, parse each item;
- ``drive(flow)`` / ``iterate(flow)``: run a multi-step flow (`agentfm._resource`).

Resources reach the gateway through these methods only. This module imports no resource,
so resources are typed against it without an import circle.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

import httpx

from agentfm._base_client import (
    RequestSpec,
    RetryPolicy,
    acall_with_retry,
    call_timeout_error,
    call_with_retry,
    decode_json,
    default_timeout,
    error_from_response,
    error_from_transport,
    output_too_large_error,
)
from agentfm._constants import (
    DEFAULT_GATEWAY,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_RETRIES,
    ENV_API_KEY,
    ENV_GATEWAY_URL,
    USER_AGENT,
)
from agentfm._flow import Emit, Sleep, Step
from agentfm._redact import basic_auth, redact_url, split_userinfo
from agentfm._transport import AsyncShardedTransport, ShardedTransport, resolve_proxy, tls_context
from agentfm._validation import require_positive_int, require_timeout
from agentfm.artifacts import ArtifactManager
from agentfm.exceptions import AgentFMError, InvalidRequestError

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping

    from typing_extensions import Self

    from agentfm._decoders import Decoder
    from agentfm._flow import Flow

__all__ = ["AsyncAPIClient", "BaseAPIClient", "SyncAPIClient"]

HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)
X = TypeVar("X")
T = TypeVar("T")
R = TypeVar("R")
_Phase = Literal["request", "stream", "body"]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Final = _Unset()


class _SharedHttp(Generic[HttpT]):
    """An httpx client shared by a client and its `with_options` copies, closed by the last."""

    def __init__(self, http: HttpT, *, owned: bool = True) -> None:
        self.http: HttpT = http
        self.owned = owned
        self.users = 1
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            self.users += 1

    def release(self) -> bool:
        """Drop one user; True when the caller must close the httpx client."""
        with self._lock:
            self.users -= 1
            return self.users == 0


def _normalise_scheme(url: str) -> str:
    """Lower-case an ``HTTP://``/``HTTPS://`` scheme; leave any other URL as given.

    A bad scheme is not refused here: like 0.3.0 (and httpx), the first request raises
    `InvalidRequestError` (``invalid_gateway_url``), inside the caller's ``try``.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        return scheme.lower() + sep + rest
    return url


def _check_args(retries: object, max_connections: int | None, timeout: object) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidRequestError(
            f"retries must be an int >= 0, got {retries!r}", code="invalid_retries"
        )
    if max_connections is not None and max_connections < 1:
        raise InvalidRequestError("max_connections must be >= 1", code="invalid_max_connections")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout <= 0:
        raise InvalidRequestError("timeout must be positive", code="invalid_timeout")


class _Deadline:
    """The total deadline of a call's ``timeout=`` (None: no deadline)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._at = None if timeout is None else time.monotonic() + timeout

    def check(self) -> None:
        if self._at is not None and time.monotonic() > self._at:
            raise call_timeout_error(self.timeout)


class _OutputCap:
    """Count a task's output bytes and refuse more than ``max_output_bytes``."""

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._received = 0

    def count(self, piece: bytes) -> bytes:
        self._received += len(piece)
        if self._limit is not None and self._received > self._limit:
            raise output_too_large_error(self._limit)
        return piece


def _stream_policy(retries: int) -> RetryPolicy:
    """A stream is retried only while its request was never sent (it may run a task)."""
    return RetryPolicy(retries, idempotent=False)


def mark_started(exc: AgentFMError) -> AgentFMError:
    """The default ``on_error`` of `stream`: the failure came after the 200."""
    exc.task_started = True
    return exc


def _status_error(response: httpx.Response, body: bytes) -> AgentFMError:
    return error_from_response(response.status_code, response.headers, body, response=response)


def _raw_pieces(response: httpx.Response) -> Iterator[bytes]:
    """The body as it arrives, without httpx's decoding layer (bodies are uncompressed)."""
    try:
        yield from response.iter_raw()
    except httpx.StreamConsumed:
        # A response built with its content already in memory (e.g. by a mock transport).
        yield response.content


async def _araw_pieces(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for piece in response.aiter_raw():
            yield piece
    except httpx.StreamConsumed:
        yield response.content


class BaseAPIClient(Generic[HttpT]):
    """Configuration common to both clients (no I/O); the constructor of both.

    The arguments are documented on `agentfm.AgentFMClient`.
    """

    def __init__(
        self,
        gateway_url: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        retries: int = DEFAULT_RETRIES,
        artifacts_dir: str | Path | None = None,
        api_key: str | _Unset | None = _UNSET,
        max_connections: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        routing_warning: bool = True,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_output_bytes: int | None = None,
        proxy: str | httpx.URL | httpx.Proxy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        http_client: HttpT | None = None,
        _shared: _SharedHttp[HttpT] | None = None,
    ) -> None:
        url = _normalise_scheme(gateway_url or os.environ.get(ENV_GATEWAY_URL) or DEFAULT_GATEWAY)
        _check_args(retries, max_connections, timeout)
        self.idle_timeout: float | None = require_timeout(idle_timeout, name="idle_timeout")
        if max_output_bytes is not None:
            require_positive_int(max_output_bytes, name="max_output_bytes")
        self.max_output_bytes: int | None = max_output_bytes
        self._url_arg = url.rstrip("/")
        # Requests go to the bare URL; userinfo becomes a Basic header (see agentfm._redact).
        bare, self._credentials = split_userinfo(self._url_arg)
        self.gateway_url: str = bare
        self.retries: int = retries
        if isinstance(api_key, _Unset):
            api_key = os.environ.get(ENV_API_KEY) or None
        self._api_key: str | None = api_key or None
        self._timeout_arg = timeout
        self.timeout: httpx.Timeout = default_timeout(timeout)
        self.max_connections = max_connections
        self.default_headers: dict[str, str] = dict(default_headers or {})
        self.routing_warning: bool = bool(routing_warning)
        self.artifacts_dir: Path | None = (
            Path(artifacts_dir).expanduser().resolve() if artifacts_dir is not None else None
        )
        self.artifacts: ArtifactManager | None = (
            ArtifactManager(watch_dir=self.artifacts_dir, extract_dir=self.artifacts_dir)
            if self.artifacts_dir is not None
            else None
        )
        self._artifact_route_missing = False
        self._proxy_arg = proxy
        self._verify = verify
        self._proxy: httpx.Proxy | None = resolve_proxy(self.gateway_url, proxy)
        self._headers_auth = self._headers(auth=True)
        self._headers_plain = self._headers(auth=False)
        if _shared is None:
            # An injected client is used as is (its transport, proxies, TLS, event hooks),
            # and the caller closes it.
            _shared = (
                _SharedHttp(http_client, owned=False)
                if http_client is not None
                else _SharedHttp(self._new_http())
            )
        else:
            _shared.acquire()
        self._shared: _SharedHttp[HttpT] = _shared
        self._http: HttpT = _shared.http
        self._injected_http = not _shared.owned
        self._closed = False

    def _new_http(self) -> HttpT:
        """The httpx client this SDK builds when none is injected."""
        raise NotImplementedError

    def _transport_kwargs(self) -> dict[str, Any]:
        return {
            "max_connections": self.max_connections,
            "proxy": self._proxy,
            "verify": tls_context(self.gateway_url, self._verify),
        }

    @property
    def api_key(self) -> str | None:
        """The bearer key sent with every request (never shown in ``repr``)."""
        return self._api_key

    @property
    def auth_headers(self) -> Mapping[str, str]:
        """The headers of an authenticated request (they carry the key: never log them)."""
        return self._headers_auth

    def __repr__(self) -> str:
        auth = "set" if self._api_key else "none"
        url = redact_url(self._url_arg)
        return f"{type(self).__name__}(gateway_url={url!r}, api_key=<{auth}>)"

    def _headers(self, *, auth: bool = True) -> dict[str, str]:
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            # Bodies are read raw (no decoding layer), so ask for them uncompressed.
            "Accept-Encoding": "identity",
            **self.default_headers,
        }
        if auth and self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if self._credentials is not None:
            # Userinfo in the URL: sent on every request, as httpx sends it (it replaces a
            # bearer key, since both would be the one Authorization header).
            headers["Authorization"] = basic_auth(self._credentials)
        return headers

    def prepare(self, spec: RequestSpec) -> RequestSpec:
        """``spec`` with the gateway URL, the headers and the client's timeout filled in."""
        headers = self._headers_auth if spec.auth else self._headers_plain
        if spec.headers:
            headers = {**headers, **spec.headers}
        return RequestSpec(
            method=spec.method,
            path=self.gateway_url + spec.path,
            json=spec.json,
            params=spec.params,
            timeout=spec.timeout or self.timeout,
            idempotent=spec.idempotent,
            auth=spec.auth,
            headers=headers,
            idle_timeout=spec.idle_timeout,
        )

    def _policy(self, spec: RequestSpec, retry: bool = True) -> RetryPolicy:
        return RetryPolicy(self.retries if retry else 0, spec.idempotent)

    def _transport_error(self, exc: Exception, phase: _Phase = "request") -> AgentFMError:
        return error_from_transport(exc, gateway_url=self.gateway_url, phase=phase)

    def _release(self) -> bool:
        """Mark this client closed; True when the caller must close the httpx client."""
        if self._closed:
            return False
        self._closed = True
        return self._shared.release() and self._shared.owned

    def with_options(self, **options: Any) -> Self:
        """Return a client with some settings changed that shares this one's connection pool."""
        merged: dict[str, Any] = {
            "gateway_url": self._url_arg,
            "timeout": self._timeout_arg,
            "retries": self.retries,
            "artifacts_dir": self.artifacts_dir,
            "api_key": self._api_key,
            "max_connections": self.max_connections,
            "default_headers": self.default_headers,
            "routing_warning": self.routing_warning,
            "idle_timeout": self.idle_timeout,
            "max_output_bytes": self.max_output_bytes,
            "proxy": self._proxy_arg,
            "verify": self._verify,
        }
        for key, value in options.items():
            if key not in merged:
                raise TypeError(f"with_options() got an unexpected keyword argument {key!r}")
            if not isinstance(value, _Unset):
                merged[key] = value
        return type(self)(**merged, _shared=self._shared)

    # -- transitional aliases (issue #16) -------------------------------------------------
    # `agentfm.resources.tasks` still calls the 0.4 private names; they go once it calls
    # the names above (the mapping is in the merge notes).

    @property
    def _auth_headers(self) -> Mapping[str, str]:
        return self._headers_auth

    def _spec(self, spec: RequestSpec) -> RequestSpec:
        return self.prepare(spec)


class SyncAPIClient(BaseAPIClient[httpx.Client]):
    """The blocking I/O of the sync client: every method is a thin driver."""

    def _new_http(self) -> httpx.Client:
        return httpx.Client(
            transport=ShardedTransport(**self._transport_kwargs()),
            follow_redirects=False,
            timeout=self.timeout,
        )

    def close(self) -> None:
        """Release the connections (once every `with_options` copy is closed too)."""
        if self._release():
            self._http.close()

    def send_once(self, spec: RequestSpec) -> httpx.Response:
        """Send a prepared ``spec`` once and read the whole body (typed error on failure)."""
        try:
            response = self._http.send(spec.build())
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise _status_error(response, response.content)
        return response

    def request(self, spec: RequestSpec, *, retry: bool = True) -> httpx.Response:
        """Send ``spec`` under the retry policy (``retry=False``: one attempt)."""
        spec = self.prepare(spec)
        return call_with_retry(self._policy(spec, retry), lambda: self.send_once(spec))

    def request_json(self, spec: RequestSpec) -> Any:
        """Send ``spec`` and decode its JSON body."""
        return decode_json(self.request(spec))

    @contextmanager
    def open_stream(self, spec: RequestSpec) -> Iterator[httpx.Response]:
        """Send ``spec`` as a stream (retried only while never sent); yield the 2xx response."""
        request = self.prepare(spec).build()

        def send() -> httpx.Response:
            try:
                return self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, "stream") from exc

        with closing(call_with_retry(_stream_policy(self.retries), send)) as response:
            if response.status_code >= 400:
                try:
                    body = response.read()
                except httpx.HTTPError:
                    body = b""
                raise _status_error(response, body)
            yield response

    def iter_body(self, response: httpx.Response, timeout: float | None) -> Iterator[bytes]:
        """The raw body pieces, within the call's total ``timeout``."""
        deadline = _Deadline(timeout)
        try:
            for piece in _raw_pieces(response):
                deadline.check()
                yield piece
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "body") from exc

    def stream(
        self,
        spec: RequestSpec,
        decoder: Decoder[X],
        parse: Callable[[X], T],
        *,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
        on_end: Callable[[], None] | None = None,
        on_error: Callable[[AgentFMError], AgentFMError] = mark_started,
    ) -> Iterator[T]:
        """Open ``spec`` as a stream, feed ``decoder``, flush it, and yield ``parse(item)``.

        ``on_end`` runs after the flush (it may raise how the stream ended). A failure
        after the 200 goes through ``on_error`` (default: `mark_started`) before it is raised.
        """
        with self.open_stream(spec) as response:
            cap = _OutputCap(max_output_bytes)
            try:
                for piece in self.iter_body(response, timeout):
                    for item in decoder.feed(cap.count(piece)):
                        yield parse(item)
                for item in decoder.flush():
                    yield parse(item)
                if on_end is not None:
                    on_end()
            except AgentFMError as exc:
                raise on_error(exc) from exc.__cause__

    def _perform(self, step: Step) -> Any:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        assert not isinstance(step, Emit)
        return self.request_json(step)

    def drive(self, flow: Flow[Any, R]) -> R:
        """Run ``flow`` to its end: send its requests, sleep its sleeps, return its result."""
        reply: Any = None
        with closing(flow):
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                reply = None if isinstance(step, Emit) else self._perform(step)

    def iterate(self, flow: Flow[T, Any]) -> Iterator[T]:
        """Run ``flow`` and yield what it emits."""
        reply: Any = None
        with closing(flow):
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration:
                    return
                if isinstance(step, Emit):
                    reply = None
                    yield step.value
                else:
                    reply = self._perform(step)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transitional aliases (issue #16): see `BaseAPIClient` ----------------------------

    def _send_once(self, spec: RequestSpec) -> httpx.Response:
        return self.send_once(spec)

    def _request(self, spec: RequestSpec, *, retry: bool = True) -> httpx.Response:
        return self.request(spec, retry=retry)

    def _request_json(self, spec: RequestSpec) -> Any:
        return self.request_json(spec)

    def _open_stream(self, spec: RequestSpec) -> Any:
        return self.open_stream(spec)

    def _iter_body(self, response: httpx.Response, timeout: float | None) -> Iterator[bytes]:
        return self.iter_body(response, timeout)


class AsyncAPIClient(BaseAPIClient[httpx.AsyncClient]):
    """The asyncio I/O of the async client: the same thin drivers, awaited."""

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=AsyncShardedTransport(**self._transport_kwargs()),
            follow_redirects=False,
            timeout=self.timeout,
        )

    async def aclose(self) -> None:
        """Release the connections (once every `with_options` copy is closed too)."""
        if self._release():
            await self._http.aclose()

    async def close(self) -> None:
        """Alias of `aclose`."""
        await self.aclose()

    async def send_once(self, spec: RequestSpec) -> httpx.Response:
        """Send a prepared ``spec`` once and read the whole body (typed error on failure)."""
        try:
            response = await self._http.send(spec.build())
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise _status_error(response, response.content)
        return response

    async def request(self, spec: RequestSpec, *, retry: bool = True) -> httpx.Response:
        """Send ``spec`` under the retry policy (``retry=False``: one attempt)."""
        spec = self.prepare(spec)
        return await acall_with_retry(self._policy(spec, retry), lambda: self.send_once(spec))

    async def request_json(self, spec: RequestSpec) -> Any:
        """Send ``spec`` and decode its JSON body."""
        return decode_json(await self.request(spec))

    @asynccontextmanager
    async def open_stream(self, spec: RequestSpec) -> AsyncIterator[httpx.Response]:
        """Send ``spec`` as a stream (retried only while never sent); yield the 2xx response."""
        request = self.prepare(spec).build()

        async def send() -> httpx.Response:
            try:
                return await self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, "stream") from exc

        response = await acall_with_retry(_stream_policy(self.retries), send)
        try:
            if response.status_code >= 400:
                try:
                    body = await response.aread()
                except httpx.HTTPError:
                    body = b""
                raise _status_error(response, body)
            yield response
        finally:
            await response.aclose()

    async def iter_body(
        self, response: httpx.Response, timeout: float | None
    ) -> AsyncIterator[bytes]:
        """The raw body pieces, within the call's total ``timeout``."""
        deadline = _Deadline(timeout)
        try:
            async for piece in _araw_pieces(response):
                deadline.check()
                yield piece
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, "body") from exc

    async def stream(
        self,
        spec: RequestSpec,
        decoder: Decoder[X],
        parse: Callable[[X], T],
        *,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
        on_end: Callable[[], None] | None = None,
        on_error: Callable[[AgentFMError], AgentFMError] = mark_started,
    ) -> AsyncIterator[T]:
        """The asyncio twin of `SyncAPIClient.stream`."""
        async with self.open_stream(spec) as response:
            cap = _OutputCap(max_output_bytes)
            try:
                async for piece in self.iter_body(response, timeout):
                    for item in decoder.feed(cap.count(piece)):
                        yield parse(item)
                for item in decoder.flush():
                    yield parse(item)
                if on_end is not None:
                    on_end()
            except AgentFMError as exc:
                raise on_error(exc) from exc.__cause__

    async def _perform(self, step: Step) -> Any:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        assert not isinstance(step, Emit)
        return await self.request_json(step)

    async def drive(self, flow: Flow[Any, R]) -> R:
        """Run ``flow`` to its end: send its requests, sleep its sleeps, return its result."""
        reply: Any = None
        with closing(flow):
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                reply = None if isinstance(step, Emit) else await self._perform(step)

    async def iterate(self, flow: Flow[T, Any]) -> AsyncIterator[T]:
        """Run ``flow`` and yield what it emits."""
        reply: Any = None
        with closing(flow):
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration:
                    return
                if isinstance(step, Emit):
                    reply = None
                    yield step.value
                else:
                    reply = await self._perform(step)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- transitional aliases (issue #16): see `BaseAPIClient` ----------------------------

    async def _send_once(self, spec: RequestSpec) -> httpx.Response:
        return await self.send_once(spec)

    async def _request(self, spec: RequestSpec, *, retry: bool = True) -> httpx.Response:
        return await self.request(spec, retry=retry)

    async def _request_json(self, spec: RequestSpec) -> Any:
        return await self.request_json(spec)

    def _open_stream(self, spec: RequestSpec) -> Any:
        return self.open_stream(spec)

    def _iter_body(self, response: httpx.Response, timeout: float | None) -> AsyncIterator[bytes]:
        return self.iter_body(response, timeout)
