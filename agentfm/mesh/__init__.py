"""Embedded AgentFM gateway: the real HTTP protocol with local workers, on one machine.

Example:
    >>> from agentfm.mesh import EmbeddedMesh
    >>> with EmbeddedMesh.demo() as mesh:  # doctest: +SKIP
    ...     print(mesh.url, mesh.peer_id("echo"))
"""

# ruff: noqa: E402  (the extra's check below has to run before the imports that need it)
from __future__ import annotations

import importlib.util

# The `mesh` extra: the server stack and the worker identities. Checked up front so that a
# plain `pip install agentfm-integrations` gets the install command instead of a bare
# "No module named ..." from deep inside (uvicorn and starlette are imported only on start).
_EXTRA_MODULES = ("cryptography", "starlette", "uvicorn")


def _missing_modules() -> list[str]:
    missing = []
    for name in _EXTRA_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


if _missing := _missing_modules():
    raise ImportError(
        f'agentfm.mesh needs {", ".join(_missing)}: pip install "agentfm-integrations[mesh]"',
        name=_missing[0],
    )

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
