"""0.3.0 module path of the sync client (see `agentfm._compat`)."""

from __future__ import annotations

from agentfm._client import DEFAULT_GATEWAY, AgentFMClient
from agentfm._compat import make_client

__all__ = ["DEFAULT_GATEWAY", "AgentFMClient", "make_client"]
