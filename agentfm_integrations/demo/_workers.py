"""The workers the tour adds to the demo mesh: one that refuses every task, and a proxied LLM."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from agentfm_integrations.demo._settings import ENV_OPENAI_API_KEY, FLAKY_NAME, LLM_WORKER_NAME

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console

    from agentfm.mesh import AgentContext, WorkerConfig


def _refuse_every_task(prompt: str, ctx: AgentContext) -> Iterator[str]:
    """Agent body of the flaky worker: refuse, the way a real worker at capacity does.

    A real worker that cannot take a task writes one ``❌ ERROR:`` line and closes the
    stream without an end-of-task marker. The SDK types it as a rejection, and scatter
    sends the prompt to another peer (as it does for any failed task; only a task that
    completed is never re-run).
    """
    from agentfm.mesh import BreakStream

    yield f"❌ ERROR: demo worker refuses task {ctx.task_id}. Try another worker.\n"
    raise BreakStream("closed without a marker")


def flaky_worker() -> WorkerConfig:
    from agentfm.mesh import CallableAgent, WorkerConfig

    return WorkerConfig(
        FLAKY_NAME,
        "echo",
        CallableAgent(_refuse_every_task),
        description="Refuses every task (shows failover).",
        max_tasks=4,
    )


def llm_worker(base_url: str, model: str) -> WorkerConfig:
    """A worker that forwards its tasks to an OpenAI-compatible server (Ollama, vLLM, …)."""
    from agentfm.mesh import OpenAIProxyAgent, WorkerConfig

    return WorkerConfig(
        LLM_WORKER_NAME,
        model,
        OpenAIProxyAgent(base_url, model, os.environ.get(ENV_OPENAI_API_KEY) or None),
        description=f"{model} at {base_url}",
        max_tasks=4,
    )


def check_openai_server(console: Console, base_url: str) -> bool:
    """Whether the OpenAI-compatible server answers ``GET /models``; says why not."""
    import httpx

    try:
        httpx.get(f"{base_url.rstrip('/')}/models", timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        console.print(
            f"[red]Cannot use the OpenAI-compatible server at {base_url}: {exc}[/]\n"
            "Is it running? (Ollama: `ollama serve`, base URL http://127.0.0.1:11434/v1)"
        )
        return False
    return True
