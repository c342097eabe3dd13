"""0.3.0 module path of `LocalMeshGateway` (re-exports)."""

from __future__ import annotations

from agentfm.gateway import LocalMeshGateway

__all__ = ["LocalMeshGateway"]
