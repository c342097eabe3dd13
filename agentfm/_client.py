"""`AgentFMClient` and `AsyncAgentFMClient`: configuration, lifecycle and the HTTP drivers.

The drivers here are deliberately short: `agentfm._base_client` decides what to send, what a
response means and whether to retry; these methods only move bytes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

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
)
from agentfm._constants import (
    DEFAULT_GATEWAY,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_RETRIES,
    ENV_API_KEY,
    ENV_GATEWAY_URL,
    USER_AGENT,
)
from agentfm._redact import basic_auth, redact_url, split_userinfo
from agentfm._transport import (
    AsyncShardedTransport,
    ShardedTransport,
    resolve_proxy,
    tls_context,
)
from agentfm._validation import require_positive_int, require_timeout
from agentfm.artifacts import ArtifactManager
from agentfm.exceptions import AgentFMError, InvalidRequestError

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator, Iterator, Mapping
    from types import TracebackType

    from agentfm.resources.openai import AsyncOpenAINamespace, OpenAINamespace
    from agentfm.resources.peers import AsyncPeers, Peers
    from agentfm.resources.tasks import AsyncTasks, Tasks
    from agentfm.resources.workers import AsyncWorkers, Workers

__all__ = ["DEFAULT_GATEWAY", "AgentFMClient", "AsyncAgentFMClient"]

log = logging.getLogger("agentfm.client")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Final = _Unset()


class _SharedHttp:
    """An httpx client shared by a client and its `with_options` copies, closed by the last."""

    def __init__(self, http: httpx.Client | httpx.AsyncClient, *, owned: bool = True) -> None:
        self.http = http
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


class _BaseClient:
    """Configuration common to both clients (no I/O)."""

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
    ) -> None:
        url = _normalise_scheme(gateway_url or os.environ.get(ENV_GATEWAY_URL) or DEFAULT_GATEWAY)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidRequestError(
                f"retries must be an int >= 0, got {retries!r}", code="invalid_retries"
            )
        if max_connections is not None and max_connections < 1:
            raise InvalidRequestError(
                "max_connections must be >= 1", code="invalid_max_connections"
            )
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout <= 0:
            raise InvalidRequestError("timeout must be positive", code="invalid_timeout")
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
        self._injected_http = False
        self._auth_headers = self._headers(auth=True)
        self._plain_headers = self._headers(auth=False)

    @property
    def api_key(self) -> str | None:
        """The bearer key sent with every request (never shown in ``repr``)."""
        return self._api_key

    def __repr__(self) -> str:
        auth = "set" if self._api_key else "none"
        url = redact_url(self._url_arg)
        return f"{type(self).__name__}(gateway_url={url!r}, api_key=<{auth}>)"

    def _transport_kwargs(self) -> dict[str, Any]:
        return {
            "max_connections": self.max_connections,
            "proxy": self._proxy,
            "verify": tls_context(self.gateway_url, self._verify),
        }

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

    def _spec(self, spec: RequestSpec) -> RequestSpec:
        headers = self._auth_headers if spec.auth else self._plain_headers
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

    def _option_kwargs(self, overrides: dict[str, Any]) -> dict[str, Any]:
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
        for key, value in overrides.items():
            if key not in merged:
                raise TypeError(f"with_options() got an unexpected keyword argument {key!r}")
            if not isinstance(value, _Unset):
                merged[key] = value
        return merged


def _normalise_scheme(url: str) -> str:
    """Lower-case an ``HTTP://``/``HTTPS://`` scheme; leave any other URL as given.

    A bad scheme is not refused here: like 0.3.0 (and httpx), the first request raises
    `InvalidRequestError` (``invalid_gateway_url``), inside the caller's ``try``.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        return scheme.lower() + sep + rest
    return url


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _check_deadline(deadline: float | None, timeout: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise call_timeout_error(timeout)


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


class AgentFMClient(_BaseClient):
    """Synchronous client of an AgentFM gateway; safe to share between threads.

    Args:
        gateway_url: Base URL; default env ``AGENTFM_GATEWAY_URL``, then ``http://127.0.0.1:8080``.
        timeout: Timeout of short calls (float seconds or `httpx.Timeout`); tasks and
            completions never time out between bytes unless a call passes ``timeout=``.
        retries: Retries of idempotent calls and of requests that were never sent.
        artifacts_dir: Where task artifacts are extracted (``<dir>/<task_id>/``); also the
            shared-filesystem folder where the gateway drops ``<task_id>.zip``.
        api_key: Bearer key; omitted → env ``AGENTFM_API_KEY``; None → no auth.
        max_connections: Upper bound on open connections (default: unbounded).
        default_headers: Extra headers sent with every request.
        routing_warning: Warn (`AgentFMRoutingWarning`, once per model) when an
            OpenAI-compatible call names a model that is not a peer id; False for code that
            routes by agent or engine name on purpose.
        idle_timeout: Seconds a task or completion stream may send nothing before
            `AgentFMTimeoutError` (default 600, the Go gateway's own idle limit; None: wait
            for ever). ``tasks.run/stream/scatter`` also take it per call.
        max_output_bytes: Fail a task whose output passes this many bytes
            (`OutputTooLargeError`); default: no cap.
        proxy: Proxy URL (or `httpx.Proxy`); default: ``HTTP(S)_PROXY``/``ALL_PROXY`` unless
            ``NO_PROXY`` covers the gateway, as httpx reads them.
        verify: TLS verification (bool, CA bundle path or `ssl.SSLContext`) for https.
        http_client: An `httpx.Client` (`httpx.AsyncClient` for the async client) to send
            every request through, used as is and never closed by the SDK.

    URL userinfo (``http://user:pw@host``) is sent as ``Authorization: Basic`` on every
    request (it replaces a bearer key) and shown as ``http://***@host``;
    ``gateway_url`` holds the URL without it.

    Example:
        ```python
        with AgentFMClient() as client:
            peer = client.workers.list(available_only=True)[0].peer_id
            print(client.tasks.run(worker_id=peer, prompt="hello").text)
        ```
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
        http_client: httpx.Client | None = None,
        _shared: _SharedHttp | None = None,
    ) -> None:
        super().__init__(
            gateway_url,
            timeout=timeout,
            retries=retries,
            artifacts_dir=artifacts_dir,
            api_key=api_key,
            max_connections=max_connections,
            default_headers=default_headers,
            routing_warning=routing_warning,
            idle_timeout=idle_timeout,
            max_output_bytes=max_output_bytes,
            proxy=proxy,
            verify=verify,
        )
        if _shared is None and http_client is not None:
            # The caller's client, used as is (its transport, proxies, TLS, event hooks);
            # the caller closes it.
            _shared = _SharedHttp(http_client, owned=False)
            self._injected_http = True
        elif _shared is not None:
            self._injected_http = not _shared.owned
        if _shared is None:
            _shared = _SharedHttp(
                httpx.Client(
                    transport=ShardedTransport(**self._transport_kwargs()),
                    follow_redirects=False,
                    timeout=self.timeout,
                )
            )
        else:
            _shared.acquire()
        self._shared = _shared
        self._http: httpx.Client = _shared.http  # type: ignore[assignment]
        self._closed = False

    @cached_property
    def workers(self) -> Workers:
        """Worker discovery: ``list``, ``get``, ``match``."""
        from agentfm.resources.workers import Workers

        return Workers(self)

    @cached_property
    def tasks(self) -> Tasks:
        """Task dispatch: ``run``, ``stream``, ``submit_async``, ``scatter``…"""
        from agentfm.resources.tasks import Tasks

        return Tasks(self)

    @cached_property
    def openai(self) -> OpenAINamespace:
        """The OpenAI-compatible routes: ``models``, ``chat.completions``, ``completions``."""
        from agentfm.resources.openai import OpenAINamespace

        return OpenAINamespace(self)

    @cached_property
    def peers(self) -> Peers:
        """Peer trust: ``list``, ``get``, ``reputation``, ``log``, ``proof``, ``comment``…"""
        from agentfm.resources.peers import Peers

        return Peers(self)

    def with_options(self, **options: Any) -> AgentFMClient:
        """Return a client with some settings changed that shares this one's connection pool."""
        return AgentFMClient(**self._option_kwargs(options), _shared=self._shared)

    def close(self) -> None:
        """Release the connections (once every `with_options` copy is closed too)."""
        if self._closed:
            return
        self._closed = True
        if self._shared.release() and self._shared.owned:
            self._http.close()

    def __enter__(self) -> AgentFMClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def ping(self) -> bool:
        """Return True if the gateway answers ``GET /health`` (no auth needed)."""
        try:
            self._request(RequestSpec("GET", "/health", auth=False, idempotent=True), retry=False)
        except AgentFMError:
            return False
        return True

    def health(self) -> dict[str, Any]:
        """Return the ``GET /health`` body, e.g. ``{"online_workers": 3, "status": "ok"}``."""
        body = self._request_json(RequestSpec("GET", "/health", auth=False, idempotent=True))
        return body if isinstance(body, dict) else {"status": body}

    # -- drivers -------------------------------------------------------------------------

    def _send_once(self, spec: RequestSpec) -> httpx.Response:
        request = spec.build()
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, gateway_url=self.gateway_url) from exc
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code, response.headers, response.content, response=response
            )
        return response

    def _request(self, spec: RequestSpec, *, retry: bool = True) -> httpx.Response:
        spec = self._spec(spec)
        policy = RetryPolicy(self.retries if retry else 0, spec.idempotent)
        return call_with_retry(policy, lambda: self._send_once(spec))

    def _request_json(self, spec: RequestSpec) -> Any:
        return decode_json(self._request(spec))

    @contextmanager
    def _open_stream(self, spec: RequestSpec) -> Iterator[httpx.Response]:
        spec = self._spec(spec)
        request = spec.build()

        def send() -> httpx.Response:
            try:
                return self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise error_from_transport(
                    exc, gateway_url=self.gateway_url, phase="stream"
                ) from exc

        response = call_with_retry(RetryPolicy(self.retries, idempotent=False), send)
        try:
            if response.status_code >= 400:
                try:
                    body = response.read()
                except httpx.HTTPError:
                    body = b""
                raise error_from_response(
                    response.status_code, response.headers, body, response=response
                )
            yield response
        finally:
            response.close()

    def _iter_body(self, response: httpx.Response, timeout: float | None) -> Iterator[bytes]:
        deadline = _deadline(timeout)
        try:
            for piece in _raw_pieces(response):
                _check_deadline(deadline, timeout)
                yield piece
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, gateway_url=self.gateway_url, phase="body") from exc


class AsyncAgentFMClient(_BaseClient):
    """Asynchronous client of an AgentFM gateway (same arguments as `AgentFMClient`).

    Example:
        ```python
        async with AsyncAgentFMClient() as client:
            async for chunk in client.tasks.stream(worker_id=peer, prompt="hi"):
                print(chunk.text, end="")
        ```
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
        http_client: httpx.AsyncClient | None = None,
        _shared: _SharedHttp | None = None,
    ) -> None:
        super().__init__(
            gateway_url,
            timeout=timeout,
            retries=retries,
            artifacts_dir=artifacts_dir,
            api_key=api_key,
            max_connections=max_connections,
            default_headers=default_headers,
            routing_warning=routing_warning,
            idle_timeout=idle_timeout,
            max_output_bytes=max_output_bytes,
            proxy=proxy,
            verify=verify,
        )
        if _shared is None and http_client is not None:
            # The caller's client, used as is (its transport, proxies, TLS, event hooks);
            # the caller closes it.
            _shared = _SharedHttp(http_client, owned=False)
            self._injected_http = True
        elif _shared is not None:
            self._injected_http = not _shared.owned
        if _shared is None:
            _shared = _SharedHttp(
                httpx.AsyncClient(
                    transport=AsyncShardedTransport(**self._transport_kwargs()),
                    follow_redirects=False,
                    timeout=self.timeout,
                )
            )
        else:
            _shared.acquire()
        self._shared = _shared
        self._http: httpx.AsyncClient = _shared.http  # type: ignore[assignment]
        self._closed = False

    @cached_property
    def workers(self) -> AsyncWorkers:
        """Worker discovery: ``list``, ``get``, ``match``."""
        from agentfm.resources.workers import AsyncWorkers

        return AsyncWorkers(self)

    @cached_property
    def tasks(self) -> AsyncTasks:
        """Task dispatch: ``run``, ``stream``, ``submit_async``, ``scatter``…"""
        from agentfm.resources.tasks import AsyncTasks

        return AsyncTasks(self)

    @cached_property
    def openai(self) -> AsyncOpenAINamespace:
        """The OpenAI-compatible routes: ``models``, ``chat.completions``, ``completions``."""
        from agentfm.resources.openai import AsyncOpenAINamespace

        return AsyncOpenAINamespace(self)

    @cached_property
    def peers(self) -> AsyncPeers:
        """Peer trust: ``list``, ``get``, ``reputation``, ``log``, ``proof``, ``comment``…"""
        from agentfm.resources.peers import AsyncPeers

        return AsyncPeers(self)

    def with_options(self, **options: Any) -> AsyncAgentFMClient:
        """Return a client with some settings changed that shares this one's connection pool."""
        return AsyncAgentFMClient(**self._option_kwargs(options), _shared=self._shared)

    async def aclose(self) -> None:
        """Release the connections (once every `with_options` copy is closed too)."""
        if self._closed:
            return
        self._closed = True
        if self._shared.release() and self._shared.owned:
            await self._http.aclose()

    async def close(self) -> None:
        """Alias of `aclose`."""
        await self.aclose()

    async def __aenter__(self) -> AsyncAgentFMClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def ping(self) -> bool:
        """Return True if the gateway answers ``GET /health`` (no auth needed)."""
        try:
            await self._request(
                RequestSpec("GET", "/health", auth=False, idempotent=True), retry=False
            )
        except AgentFMError:
            return False
        return True

    async def health(self) -> dict[str, Any]:
        """Return the ``GET /health`` body, e.g. ``{"online_workers": 3, "status": "ok"}``."""
        body = await self._request_json(RequestSpec("GET", "/health", auth=False, idempotent=True))
        return body if isinstance(body, dict) else {"status": body}

    # -- drivers -------------------------------------------------------------------------

    async def _send_once(self, spec: RequestSpec) -> httpx.Response:
        request = spec.build()
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, gateway_url=self.gateway_url) from exc
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code, response.headers, response.content, response=response
            )
        return response

    async def _request(self, spec: RequestSpec, *, retry: bool = True) -> httpx.Response:
        spec = self._spec(spec)
        policy = RetryPolicy(self.retries if retry else 0, spec.idempotent)
        return await acall_with_retry(policy, lambda: self._send_once(spec))

    async def _request_json(self, spec: RequestSpec) -> Any:
        return decode_json(await self._request(spec))

    @asynccontextmanager
    async def _open_stream(self, spec: RequestSpec) -> AsyncIterator[httpx.Response]:
        spec = self._spec(spec)
        request = spec.build()

        async def send() -> httpx.Response:
            try:
                return await self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise error_from_transport(
                    exc, gateway_url=self.gateway_url, phase="stream"
                ) from exc

        response = await acall_with_retry(RetryPolicy(self.retries, idempotent=False), send)
        try:
            if response.status_code >= 400:
                try:
                    body = await response.aread()
                except httpx.HTTPError:
                    body = b""
                raise error_from_response(
                    response.status_code, response.headers, body, response=response
                )
            yield response
        finally:
            await response.aclose()

    async def _iter_body(
        self, response: httpx.Response, timeout: float | None
    ) -> AsyncIterator[bytes]:
        deadline = _deadline(timeout)
        try:
            async for piece in _araw_pieces(response):
                _check_deadline(deadline, timeout)
                yield piece
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, gateway_url=self.gateway_url, phase="body") from exc
