"""0.3.0 module path of the sync client (re-exports), plus 0.3.0's `make_client` helper."""

from __future__ import annotations

import httpx

from agentfm._api_config import http_preset
from agentfm._client import DEFAULT_GATEWAY, AgentFMClient
from agentfm._constants import USER_AGENT

__all__ = ["DEFAULT_GATEWAY", "AgentFMClient", "make_client"]


def make_client(
    base_url: str,
    *,
    timeout: float | httpx.Timeout | None = None,
    user_agent: str = USER_AGENT,
    api_key: str | None = None,
) -> httpx.Client:
    """Return an `httpx.Client` preset for a gateway, as 0.3.0's ``make_client`` did.

    ``base_url`` is the gateway URL, ``api_key`` (if any) is sent as a bearer token, and
    redirects are not followed. `AgentFMClient` does not need it; it exists so that code
    importing it from ``agentfm.client`` keeps working.
    """
    return httpx.Client(**http_preset(base_url, timeout, user_agent, api_key))
