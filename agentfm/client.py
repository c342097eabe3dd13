"""0.3.0 module path of the sync client (re-exports)."""

from __future__ import annotations

from agentfm._client import DEFAULT_GATEWAY, AgentFMClient

__all__ = ["DEFAULT_GATEWAY", "AgentFMClient"]
