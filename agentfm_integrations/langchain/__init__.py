"""LangChain integration for the AgentFM mesh.

`ChatAgentFM` is a chat model whose ``batch`` fans out as one scatter across the mesh,
`AgentFMLLM` its text-completion twin, and `AgentFMTool`, `AgentFMScatterTool` and
`AgentFMToolkit` hand agents the mesh's workers as tools that return produced files.

Example:
    ```python
    from agentfm_integrations.langchain import ChatAgentFM

    llm = ChatAgentFM(model="echo", gateway_url="http://127.0.0.1:8080")
    answers = llm.batch(["one", "two", "three"])  # one scatter across every echo peer
    ```
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    msg = (
        "agentfm_integrations.langchain needs langchain-core: "
        'pip install "agentfm-integrations[langchain]"'
    )
    raise ImportError(msg) from exc

from agentfm_integrations.langchain.chat_models import ChatAgentFM
from agentfm_integrations.langchain.llms import AgentFMLLM
from agentfm_integrations.langchain.tools import (
    AgentFMScatterTool,
    AgentFMTool,
    AgentFMToolkit,
)

__all__ = [
    "AgentFMLLM",
    "AgentFMScatterTool",
    "AgentFMTool",
    "AgentFMToolkit",
    "ChatAgentFM",
]
