"""Lazily built SDK clients shared by the LLM and the tools."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from agentfm import AgentFMClient, AsyncAgentFMClient

__all__ = ["ClientHolder", "client_settings"]


class ClientHolder:
    """Build the sync client once and one async client per event loop, on first use.

    httpx async connections belong to the loop that opened them, so a component used from
    several `asyncio.run` calls gets a fresh async client in each loop. Clients passed in
    by the caller are used as they are and never closed here.
    """

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        client: AgentFMClient | None = None,
        async_client: AsyncAgentFMClient | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._owns_client = client is None
        self._given_aclient = async_client
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncAgentFMClient] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def sync(self) -> AgentFMClient:
        """The sync client."""
        if self._client is None:
            self._client = AgentFMClient(**self._settings)
        return self._client

    @property
    def async_(self) -> AsyncAgentFMClient:
        """The async client of the running event loop."""
        if self._given_aclient is not None:
            return self._given_aclient
        loop = asyncio.get_running_loop()
        aclient = self._aclients.get(loop)
        if aclient is None:
            aclient = AsyncAgentFMClient(**self._settings)
            self._aclients[loop] = aclient
        return aclient

    def close(self) -> None:
        """Close the sync client if it was built here."""
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the running loop's async client if it was built here."""
        aclient = self._aclients.pop(asyncio.get_running_loop(), None)
        if aclient is not None:
            await aclient.aclose()


def client_settings(
    *,
    gateway_url: str | None,
    api_key: str | None,
    timeout: float | None,
    retries: int | None,
    artifacts_dir: str | None,
) -> dict[str, Any]:
    """SDK client keyword arguments, leaving out what is unset so the SDK's env fallbacks apply.

    Args:
        gateway_url: Gateway URL, or None for `AGENTFM_GATEWAY_URL`/the default.
        api_key: Bearer key, or None for `AGENTFM_API_KEY`.
        timeout: Request timeout in seconds, or None for the SDK's defaults.
        retries: Retries of idempotent calls, or None for the SDK's default.
        artifacts_dir: Artifact extraction directory, or None for the SDK's default.

    Returns:
        The keyword arguments for `AgentFMClient`/`AsyncAgentFMClient`.
    """
    settings: dict[str, Any] = {"gateway_url": gateway_url}
    if api_key is not None:
        settings["api_key"] = api_key
    if timeout is not None:
        settings["timeout"] = timeout
    if retries is not None:
        settings["retries"] = retries
    if artifacts_dir is not None:
        settings["artifacts_dir"] = artifacts_dir
    return settings
