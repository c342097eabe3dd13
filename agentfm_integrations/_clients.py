"""SDK clients for the integrations: settings to client arguments, and lazily built clients."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import TYPE_CHECKING, Any

from agentfm import DEFAULT_IDLE_TIMEOUT, AgentFMClient, AsyncAgentFMClient

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import SecretStr

__all__ = ["AsyncScope", "ClientHolder", "client_kwargs"]


def client_kwargs(
    *,
    gateway_url: str | None,
    api_key: SecretStr | str | None,
    timeout: float | None,
    retries: int | None,
    artifacts_dir: str | Path | None,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
) -> dict[str, Any]:
    """SDK client arguments from integration settings; unset ones are left to the SDK.

    Leaving out what is unset lets the SDK apply its own fallbacks (``AGENTFM_GATEWAY_URL``,
    ``AGENTFM_API_KEY``, its defaults) in one place. The integrations route by agent or
    engine name on purpose, so their clients do not warn about it.
    """
    settings: dict[str, Any] = {
        "gateway_url": gateway_url,
        "routing_warning": False,
        # Always passed: None is meaningful here (no idle bound), unlike the other settings.
        "idle_timeout": idle_timeout,
    }
    if api_key is not None:
        settings["api_key"] = api_key if isinstance(api_key, str) else api_key.get_secret_value()
    if timeout is not None:
        settings["timeout"] = timeout
    if retries is not None:
        settings["retries"] = retries
    if artifacts_dir is not None:
        settings["artifacts_dir"] = artifacts_dir
    return settings


class ClientHolder:
    """Build the sync client once and async clients on demand, from one set of settings.

    httpx async connections belong to the loop that opened them, so `async_` keeps one async
    client (one connection pool) per event loop, reused by every call made on that loop;
    `aclose` closes the running loop's one. Clients passed in by the
    caller are used as they are (build them with ``routing_warning=False`` to silence the
    by-name routing warning) and never closed here.
    """

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        client: AgentFMClient | None = None,
        async_client: AsyncAgentFMClient | None = None,
    ) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client = client
        self._owns_client = client is None
        self.given_async = async_client
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncAgentFMClient] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def sync(self) -> AgentFMClient:
        """The sync client (thread-safe; built on first use)."""
        with self._lock:
            if self._client is None:
                self._client = AgentFMClient(**self.settings)
            return self._client

    @property
    def async_(self) -> AsyncAgentFMClient:
        """The async client of the running event loop."""
        if self.given_async is not None:
            return self.given_async
        loop = asyncio.get_running_loop()
        aclient = self._aclients.get(loop)
        if aclient is None:
            aclient = AsyncAgentFMClient(**self.settings)
            self._aclients[loop] = aclient
        return aclient

    def async_scope(self) -> AsyncScope:
        """``async with holder.async_scope() as client``: the caller's or this loop's client."""
        return AsyncScope(self)

    def close(self) -> None:
        """Close the sync client if it was built here."""
        with self._lock:
            if self._client is None or not self._owns_client:
                return
            client, self._client = self._client, None
        client.close()

    async def aclose(self) -> None:
        """Close the running loop's async client if it was built here."""
        aclient = self._aclients.pop(asyncio.get_running_loop(), None)
        if aclient is not None:
            await aclient.aclose()


class AsyncScope:
    """Yield the caller's async client, or the one this holder keeps for the running loop.

    Nothing is closed on exit: building a client (and its connection pool) per call costs
    a TCP and TLS handshake each time, so the per-loop client lives until `ClientHolder.aclose`
    or until its loop is garbage-collected.
    """

    def __init__(self, holder: ClientHolder) -> None:
        self._holder = holder

    async def __aenter__(self) -> AsyncAgentFMClient:
        return self._holder.async_

    async def __aexit__(self, *exc: object) -> None:
        return None
