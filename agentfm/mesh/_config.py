"""Worker configuration: the demo set and the TOML file format.

TOML format (relative paths are resolved against the file's folder)::

    [mesh]                         # every key optional
    host = "127.0.0.1"
    port = 8080
    artifacts_dir = "agentfm_artifacts"
    key_dir = ".agentfm-keys"      # one Ed25519 key per worker: stable peer ids
    api_keys = ["…16+ chars…"]     # default: env AGENTFM_API_KEYS
    webhook_secret = "…"           # default: env AGENTFM_WEBHOOK_SECRET
    allow_private_webhooks = false
    max_async_tasks = 256
    state_dir = ".agentfm-state"   # the reputation ledger and comment bodies (default key_dir)
    ledger = true                  # false: /v1/peers answers as a gateway without a ledger
    reputation_floor = -0.5        # peers scoring below it are refused dispatch

    [[workers]]
    name = "echo"                  # required, ≤ 20 chars
    engine = "echo"                # required (the "model")
    author = "me"                  # optional, default "agentfm"
    description = "…"
    max_tasks = 2
    replicas = 2                   # optional: start this many identical workers
    seed = "any text"              # optional identity seed (else key_dir, else random)
    capability = "tool-calling"    # optional tag (default: kebab-case name; "llm" for openai)
    # exactly one agent kind:
    demo = "echo"                  # echo | writer | summarizer | planner
    # command = ["python3", "agent.py"]   + optional timeout = 60, env = {K = "V"}, cwd = "."
    # openai = { base_url = "http://127.0.0.1:11434/v1", model = "llama3.2", api_key_env = "KEY" }
    # callable = "package.module:function"
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from agentfm.mesh._worker import WorkerConfig
from agentfm.mesh.agents import Agent, AgentContext, CallableAgent, CommandAgent, OpenAIProxyAgent
from agentfm.mesh.demo_agents import plan_reply, python_agent_argv, summarize

# tomllib is 3.11+; on 3.10 the API-identical tomli backport is used.
tomllib: Any = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")

DEMO_AGENTS = ("echo", "writer", "summarizer", "planner")


def _summarize(prompt: str, ctx: AgentContext) -> str:
    return summarize(prompt)


def _plan(prompt: str, ctx: AgentContext) -> str:
    return plan_reply(prompt)


def demo_agent(kind: str) -> Agent:
    """The agent behind a demo worker kind.

    ``echo`` and ``writer`` are subprocess agents (as real workers run containers);
    ``summarizer`` and ``planner`` run in-process.
    """
    if kind == "echo":
        return CommandAgent(python_agent_argv("echo"), timeout=60)
    if kind == "writer":
        return CommandAgent(python_agent_argv("writer"), timeout=60)
    if kind == "summarizer":
        return CallableAgent(_summarize)
    if kind == "planner":
        return CallableAgent(_plan)
    raise ValueError(f"unknown demo agent {kind!r}; choose one of {', '.join(DEMO_AGENTS)}")


def demo_workers() -> list[WorkerConfig]:
    """The demo mesh: two ``echo`` workers, a ``writer``, an extractive ``summarizer`` and a
    ``planner`` (a deterministic stand-in for an LLM that follows a tool-calling contract)."""
    return [
        *(
            WorkerConfig(
                "echo",
                "echo",
                demo_agent("echo"),
                description="Streams the prompt back line by line.",
                max_tasks=4,
                seed=f"agentfm-demo:echo:{replica}",
            )
            for replica in range(2)
        ),
        WorkerConfig(
            "writer",
            "markdown",
            demo_agent("writer"),
            description="Writes the answer to answer.md (an artifact).",
            max_tasks=2,
            seed="agentfm-demo:writer:0",
        ),
        WorkerConfig(
            "summarizer",
            "extractive",
            demo_agent("summarizer"),
            description="Extractive summary: the most representative sentences, no model.",
            max_tasks=4,
            seed="agentfm-demo:summarizer:0",
        ),
        WorkerConfig(
            "planner",
            "planner",
            demo_agent("planner"),
            description="Follows the prompted tool-calling and JSON-schema reply contract "
            "deterministically, no model.",
            max_tasks=8,
            seed="agentfm-demo:planner:0",
            capability="tool-calling",
        ),
    ]


def _resolve(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def _agent_from_table(table: dict[str, Any], base: Path) -> Agent:
    kinds = [k for k in ("demo", "command", "openai", "callable") if k in table]
    if len(kinds) != 1:
        raise ValueError(
            f"worker {table.get('name')!r}: give exactly one of demo, command, openai, callable"
        )
    kind = kinds[0]
    if kind == "demo":
        return demo_agent(str(table["demo"]))
    if kind == "command":
        argv = [str(a) for a in table["command"]]
        cwd = table.get("cwd")
        return CommandAgent(
            argv,
            timeout=table.get("timeout"),
            env={str(k): str(v) for k, v in table.get("env", {}).items()},
            cwd=_resolve(base, cwd) if cwd else None,
        )
    if kind == "openai":
        spec = table["openai"]
        key_env = spec.get("api_key_env")
        return OpenAIProxyAgent(
            spec["base_url"], spec["model"], os.environ.get(key_env) if key_env else None
        )
    module_name, _, attr = str(table["callable"]).partition(":")
    fn = getattr(importlib.import_module(module_name), attr)
    return CallableAgent(fn)


_WORKER_KEYS = (
    "capability",
    "author",
    "description",
    "max_tasks",
    "seed",
    "has_gpu",
    "gpu_total_gb",
    "gpu_used_gb",
)


def load_toml(path: Path) -> tuple[list[WorkerConfig], dict[str, Any]]:
    """Parse a mesh TOML file into worker configs and :class:`EmbeddedMesh` keyword options.

    Raises:
        ValueError: the file describes an invalid worker.
    """
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    base = path.resolve().parent
    mesh = dict(data.get("mesh", {}))
    options: dict[str, Any] = {}
    for key in (
        "host",
        "port",
        "api_keys",
        "webhook_secret",
        "allow_private_webhooks",
        "max_async_tasks",
        "ledger",
        "reputation_floor",
    ):
        if key in mesh:
            options[key] = mesh[key]
    for key in ("artifacts_dir", "key_dir", "state_dir"):
        if key in mesh:
            options[key] = _resolve(base, str(mesh[key]))
    workers: list[WorkerConfig] = []
    for table in data.get("workers", []):
        replicas = int(table.get("replicas", 1))
        for index in range(replicas):
            kwargs = {k: table[k] for k in _WORKER_KEYS if k in table}
            if "openai" in table:
                # A proxy to an OpenAI-compatible server is an LLM: say so, so that the
                # integrations' prompted tool calling turns on for it by default.
                kwargs.setdefault("capability", "llm")
            if "seed" in kwargs and replicas > 1:
                kwargs["seed"] = f"{kwargs['seed']}:{index}"
            if "key_file" in table:
                kwargs["key_file"] = _resolve(base, str(table["key_file"]))
            workers.append(
                WorkerConfig(
                    str(table["name"]),
                    str(table["engine"]),
                    _agent_from_table(table, base),
                    **kwargs,
                )
            )
    return workers, options
