"""0.3.0 module path of the async client (re-exports)."""

from __future__ import annotations

from agentfm._client import DEFAULT_GATEWAY, AsyncAgentFMClient

__all__ = ["DEFAULT_GATEWAY", "AsyncAgentFMClient"]
