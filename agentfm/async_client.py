"""0.3.0 module path of the async client (re-exports), plus 0.3.0's `make_async_client`."""

from __future__ import annotations

import httpx

from agentfm._api_config import http_preset
from agentfm._client import DEFAULT_GATEWAY, AsyncAgentFMClient
from agentfm._constants import USER_AGENT

__all__ = ["DEFAULT_GATEWAY", "AsyncAgentFMClient", "make_async_client"]


def make_async_client(
    base_url: str,
    *,
    timeout: float | httpx.Timeout | None = None,
    user_agent: str = USER_AGENT,
    api_key: str | None = None,
) -> httpx.AsyncClient:
    """Return an `httpx.AsyncClient` preset for a gateway (0.3.0's ``make_async_client``).

    Same settings as `agentfm.client.make_client`: base URL, bearer key, no redirects.
    """
    return httpx.AsyncClient(**http_preset(base_url, timeout, user_agent, api_key))
