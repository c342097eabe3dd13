"""The tour's settings: its command line, worker names, and the built-in RAG corpus."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


ENV_OPENAI_BASE_URL = "AGENTFM_DEMO_OPENAI_BASE_URL"
ENV_OPENAI_MODEL = "AGENTFM_DEMO_OPENAI_MODEL"
ENV_OPENAI_API_KEY = "AGENTFM_DEMO_OPENAI_API_KEY"

FLAKY_NAME = "echo"
"""The failing worker shares the healthy echo workers' name, so name-based routing and
scatter include it, exactly as a broken peer would be included on a real mesh."""

LLM_WORKER_NAME = "llm"

COOKBOOK_URL = "https://github.com/agentfm/agentfm-integrations/tree/main/cookbook"
"""Where the cookbook lives: a wheel does not ship the scripts (pyproject's Homepage plus
``/tree/main/cookbook``; tests/apps/test_packaging.py keeps the two in step)."""

CORPUS: tuple[tuple[str, str], ...] = (
    (
        "mesh.md",
        "AgentFM is a peer-to-peer compute mesh. Workers advertise an agent name and an "
        "engine; a gateway (the boss) routes each task to a worker by peer id, agent name "
        "or engine, preferring the least loaded one.",
    ),
    (
        "scatter.md",
        "Scatter sends many prompts across many workers at once. When a worker fails or "
        "drops a task, scatter retries the prompt on a peer that has not been tried yet, "
        "so one broken worker costs a retry, not a result.",
    ),
    (
        "artifacts.md",
        "Agents can write files into their output folder. The worker zips them and ships the "
        "zip to the gateway, which keeps it under the task id; the SDK extracts it into a "
        "folder per task.",
    ),
    (
        "webhooks.md",
        "Asynchronous tasks return a task id at once. When the task ends the gateway posts "
        "a JSON callback to the webhook URL, signed with HMAC-SHA256 when a secret is set.",
    ),
    (
        "embedded.md",
        "The embedded mesh is a pure Python gateway that speaks the same HTTP protocol as "
        "the Go gateway, with local workers. It is for development, tests and demos; it "
        "does not join a libp2p swarm.",
    ),
)
RAG_QUESTION = "What happens in a scatter when a worker drops a task?"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="agentfm-py demo",
        description="End-to-end tour of AgentFM on an embedded mesh: discovery, streaming, "
        "LangChain (chain, batch with failover, tool with a file), LlamaIndex RAG.",
    )
    parser.add_argument(
        "--openai-base-url",
        default=os.environ.get(ENV_OPENAI_BASE_URL) or None,
        help="an OpenAI-compatible server (e.g. http://127.0.0.1:11434/v1 for Ollama) to add "
        f"as a mesh worker; default ${ENV_OPENAI_BASE_URL}",
    )
    parser.add_argument(
        "--openai-model",
        default=os.environ.get(ENV_OPENAI_MODEL) or "llama3.2",
        help=f"model name on that server (default: ${ENV_OPENAI_MODEL} or llama3.2)",
    )
    parser.add_argument(
        "--prompts", type=int, default=24, help="size of the LangChain batch (default: 24)"
    )
    parser.add_argument(
        "--artifacts-dir",
        type=Path,
        default=None,
        help="where task files are extracted and kept (default: a temporary folder, removed "
        "when the demo ends)",
    )
    args = parser.parse_args(argv)
    if args.prompts < 1:
        parser.error("--prompts must be at least 1")
    return args
