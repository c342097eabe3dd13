"""0.3.0 module path of `LocalMeshGateway` (see `agentfm._compat`)."""

from __future__ import annotations

from agentfm.gateway import LocalMeshGateway

__all__ = ["LocalMeshGateway"]
