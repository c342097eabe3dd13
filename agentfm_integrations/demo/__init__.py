"""``python3 -m agentfm demo``: the whole project, end to end, on an embedded mesh.

The tour is an application of its own: ``agentfm-demo`` and
``python -m agentfm_integrations.demo`` run it directly, and ``agentfm-py demo`` finds it
through the ``agentfm.cli`` entry point (the SDK does not import this package).

The tour starts `agentfm.mesh.EmbeddedMesh.demo()` on a free loopback port, adds one
``echo`` worker that refuses every task (so failover has something to do), and then:

1. discovers the workers (a table of agent, engine, load, peer id);
2. streams a task from an ``echo`` worker;
3. runs a LangChain chain, ``prompt | ChatAgentFM | StrOutputParser``;
4. sends a batch of prompts through ``ChatAgentFM.batch`` (scatter with failover);
5. calls the ``writer`` agent as a LangChain tool and reads its file from
   ``ToolMessage.artifact``;
6. answers a question over a small built-in corpus with LlamaIndex (BM25 retrieval,
   `AgentFM` as the LLM);
7. prints a report: peers used, failovers, timings and artifact paths.

``--openai-base-url`` (or ``AGENTFM_DEMO_OPENAI_BASE_URL``) adds an `OpenAIProxyAgent`
worker in front of any OpenAI-compatible server (Ollama, vLLM, …); the chain and the RAG
answer then come from that model, through the same mesh.
"""

from __future__ import annotations

from agentfm_integrations.demo._app import main
from agentfm_integrations.demo._settings import COOKBOOK_URL

__all__ = ["COOKBOOK_URL", "main"]
