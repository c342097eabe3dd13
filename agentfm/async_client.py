"""0.3.0 module path of the async client (see `agentfm._compat`)."""

from __future__ import annotations

from agentfm._client import DEFAULT_GATEWAY, AsyncAgentFMClient
from agentfm._compat import make_async_client

__all__ = ["DEFAULT_GATEWAY", "AsyncAgentFMClient", "make_async_client"]
