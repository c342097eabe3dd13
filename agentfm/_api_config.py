"""The configuration both clients share: one constructor, the headers, `with_options`.

`BaseAPIClient` does no I/O. `agentfm._api_client` adds the sync and async drivers on top
of it, and `agentfm._client` the resources; its arguments are documented on
`agentfm.AgentFMClient`.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar

import httpx

from agentfm._base_client import RequestSpec, RetryPolicy, default_timeout, error_from_transport
from agentfm._constants import (
    DEFAULT_GATEWAY,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_RETRIES,
    ENV_API_KEY,
    ENV_GATEWAY_URL,
    USER_AGENT,
)
from agentfm._redact import basic_auth, redact_url, split_userinfo
from agentfm._transport import resolve_proxy, tls_context
from agentfm._validation import require_positive_int, require_timeout
from agentfm.artifacts import ArtifactManager
from agentfm.exceptions import AgentFMError, InvalidRequestError

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping

    from typing_extensions import Self

__all__ = ["BaseAPIClient", "Settings"]

HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)
Phase = Literal["request", "stream", "body"]


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


@dataclass(frozen=True)
class Settings:
    """The client settings a request depends on, as a value for the pure spec builders."""

    gateway_url: str
    timeout: httpx.Timeout
    idle_timeout: float | None
    max_output_bytes: int | None
    routing_warning: bool


def _check_args(retries: object, max_connections: int | None, timeout: object) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidRequestError(
            f"retries must be an int >= 0, got {retries!r}", code="invalid_retries"
        )
    if max_connections is not None and max_connections < 1:
        raise InvalidRequestError("max_connections must be >= 1", code="invalid_max_connections")
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout <= 0:
        raise InvalidRequestError("timeout must be positive", code="invalid_timeout")


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
        self._auth_headers = self._headers(auth=True)
        self._plain_headers = self._headers(auth=False)
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
    def settings(self) -> Settings:
        """The settings the resources build requests from (read at each call)."""
        return Settings(
            self.gateway_url,
            self.timeout,
            self.idle_timeout,
            self.max_output_bytes,
            self.routing_warning,
        )

    @property
    def api_key(self) -> str | None:
        """The bearer key sent with every request (never shown in ``repr``)."""
        return self._api_key

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

    def _prepare(self, spec: RequestSpec) -> RequestSpec:
        """``spec`` with the gateway URL, the headers and the client's timeout filled in."""
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

    def _policy(self, spec: RequestSpec, retry: bool = True) -> RetryPolicy:
        return RetryPolicy(self.retries if retry else 0, spec.idempotent)

    def _transport_error(self, exc: Exception, phase: Phase = "request") -> AgentFMError:
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
