"""LlamaIndex integration: the mesh as an `LLM`, and its agents as tools.

```python
from agentfm_integrations.llama_index import AgentFM, AgentFMToolSpec

llm = AgentFM(model="echo", gateway_url="http://127.0.0.1:8080")
print(llm.complete("hello").text)
tools = AgentFMToolSpec(gateway_url="http://127.0.0.1:8080").to_tool_list()
```
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "agentfm_integrations.llama_index needs llama-index-core; install it with "
        '`pip install "agentfm-integrations[llama-index]"`'
    ) from exc

from agentfm import FileRef
from agentfm_integrations.llama_index.llms import (
    DEFAULT_CONTEXT_WINDOW,
    DEFAULT_NUM_OUTPUT,
    AgentFM,
)
from agentfm_integrations.llama_index.tools import AgentFMTaskTool, AgentFMToolSpec

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "DEFAULT_NUM_OUTPUT",
    "AgentFM",
    "AgentFMTaskTool",
    "AgentFMToolSpec",
    "FileRef",
]
