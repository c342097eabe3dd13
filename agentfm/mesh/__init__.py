"""Embedded AgentFM gateway: the real HTTP protocol with local workers, on one machine.

Example:
    >>> from agentfm.mesh import EmbeddedMesh
    >>> with EmbeddedMesh.demo() as mesh:  # doctest: +SKIP
    ...     print(mesh.url, mesh.peer_id("echo"))
"""

from __future__ import annotations

from agentfm.mesh._auth import AuthConfigError
from agentfm.mesh._cli import serve_main
from agentfm.mesh._worker import Worker, WorkerConfig
from agentfm.mesh.agents import (
    Agent,
    AgentContext,
    BreakStream,
    CallableAgent,
    CommandAgent,
    OpenAIProxyAgent,
)
from agentfm.mesh.embedded import EmbeddedMesh

__all__ = [
    "Agent",
    "AgentContext",
    "AuthConfigError",
    "BreakStream",
    "CallableAgent",
    "CommandAgent",
    "EmbeddedMesh",
    "OpenAIProxyAgent",
    "Worker",
    "WorkerConfig",
    "serve_main",
]
