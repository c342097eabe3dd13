"""LangChain tools that run tasks on the AgentFM mesh and hand back the files produced.

Every tool uses ``response_format="content_and_artifact"``: the content is what the
calling model reads (the agent's text, or a compact scatter summary); the artifact is
structured data for the application (task and peer ids, and the produced files as
references: path, mime type, size and sha256). LangChain keeps the artifact on the
`ToolMessage` only when the tool is invoked with a tool call, as agents do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from langchain_core.tools import BaseTool, BaseToolkit, ToolException
from pydantic import BaseModel, Field

import agentfm
from agentfm_integrations import _tasks
from agentfm_integrations.langchain._convert import (
    safe_tool_name,
    scatter_summary,
    unique_tool_names,
)
from agentfm_integrations.langchain._settings import MeshSettings

if TYPE_CHECKING:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForToolRun,
        CallbackManagerForToolRun,
    )


class AgentFMTaskInput(BaseModel):
    """Arguments of `AgentFMTool`."""

    prompt: str = Field(description="The full instruction for the agent, in plain text.")


class AgentFMScatterInput(BaseModel):
    """Arguments of `AgentFMScatterTool`."""

    prompts: list[str] = Field(
        description="Independent instructions, one per item; they run in parallel.",
        min_length=1,
    )


def _task_artifact(result: agentfm.TaskResult) -> dict[str, Any]:
    return {
        "task_id": result.task_id,
        "peer_id": result.peer_id,
        "files": agentfm.describe_files(result.artifacts),
    }


def _as_tool_error(exc: agentfm.AgentFMError) -> ToolException:
    # ToolException + handle_tool_error turns the failure into an error ToolMessage the
    # model can react to, instead of ending the agent loop.
    return ToolException(f"AgentFM task failed ({type(exc).__name__}): {exc}")


class AgentFMTool(MeshSettings, BaseTool):
    """Run one task on an AgentFM worker and return its text plus the files it produced.

    ``model`` routes like `ChatAgentFM`: a peer id pins the worker, an agent or engine name
    picks the least-loaded match (with failover to an untried peer).

    Example:
        ```python
        from agentfm_integrations.langchain import AgentFMTool

        tool = AgentFMTool(model="writer", name="writer", description="Writes reports.")
        msg = tool.invoke(
            {"type": "tool_call", "id": "1", "name": "writer", "args": {"prompt": "Draft"}}
        )
        msg.artifact["files"]  # [{"path": ..., "mime_type": ..., "size": ..., "sha256": ...}]
        ```
    """

    name: str = "agentfm_task"
    description: str = (
        "Run a task on an AgentFM mesh agent. Input: a complete plain-text instruction. "
        "Returns the agent's answer; files it writes are attached to the result."
    )
    args_schema: type[BaseModel] = AgentFMTaskInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool | str | Any = True
    model: str
    """Routing target: a peer id, an agent name or an engine name."""

    def _run(
        self, prompt: str, run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[str, dict[str, Any]]:
        try:
            with agentfm.AgentFMClient(**self._sdk_kwargs()) as client:
                result = client.tasks.run(prompt=prompt, **self._route(self.model))
        except agentfm.AgentFMError as exc:
            raise _as_tool_error(exc) from exc
        return result.text, _task_artifact(result)

    async def _arun(
        self, prompt: str, run_manager: AsyncCallbackManagerForToolRun | None = None
    ) -> tuple[str, dict[str, Any]]:
        try:
            async with agentfm.AsyncAgentFMClient(**self._sdk_kwargs()) as client:
                result = await client.tasks.run(prompt=prompt, **self._route(self.model))
        except agentfm.AgentFMError as exc:
            raise _as_tool_error(exc) from exc
        return result.text, _task_artifact(result)


class AgentFMScatterTool(MeshSettings, BaseTool):
    """Run many independent prompts in one scatter across mesh workers.

    The content is a compact per-item summary (failures listed, not raised); the artifact
    holds every item's full text, peer, task id, error and files.

    Example:
        ```python
        from agentfm_integrations.langchain import AgentFMScatterTool

        tool = AgentFMScatterTool(model="echo")
        tool.invoke({"prompts": ["a", "b", "c"]})  # "3/3 prompts succeeded.\\n[0] ok: ..."
        ```
    """

    name: str = "agentfm_scatter"
    description: str = (
        "Run several independent instructions in parallel on AgentFM mesh agents. "
        "Input: a list of complete plain-text instructions. Returns one line per item."
    )
    args_schema: type[BaseModel] = AgentFMScatterInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool | str | Any = True
    model: str | None = None
    """Routing target for every item; ignored when ``peer_ids`` is set."""
    peer_ids: list[str] | None = None
    """Explicit peers to scatter across."""
    max_concurrency: int | None = None
    """Scatter parallelism; None: the SDK scatter sizes it by the peers' task slots."""

    def _scatter_args(self, workers: list[agentfm.WorkerProfile] | None) -> dict[str, Any]:
        if self.peer_ids:
            peers = list(self.peer_ids)
        else:
            peers = _tasks.require_peers(self.model or "", workers or [])
        return {
            "peer_ids": peers,
            # None: the SDK scatter sizes it by the peers' advertised task slots.
            "max_concurrency": self.max_concurrency,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "min_honesty": self.min_honesty,
        }

    def _match_args(self) -> dict[str, Any]:
        return {"model": self.model or "", "min_honesty": self.min_honesty}

    def _needs_match(self) -> bool:
        if not self.peer_ids and not self.model:
            raise ToolException("AgentFMScatterTool needs `model` or `peer_ids`")
        return not self.peer_ids

    def _run(
        self, prompts: list[str], run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[str, dict[str, Any]]:
        try:
            with agentfm.AgentFMClient(**self._sdk_kwargs()) as client:
                match = self._needs_match()
                workers = client.workers.match(**self._match_args()) if match else None
                results = client.tasks.scatter(prompts, **self._scatter_args(workers))
        except agentfm.AgentFMError as exc:
            raise _as_tool_error(exc) from exc
        return _scatter_output(results)

    async def _arun(
        self, prompts: list[str], run_manager: AsyncCallbackManagerForToolRun | None = None
    ) -> tuple[str, dict[str, Any]]:
        try:
            async with agentfm.AsyncAgentFMClient(**self._sdk_kwargs()) as client:
                match = self._needs_match()
                workers = await client.workers.match(**self._match_args()) if match else None
                results = await client.tasks.scatter(prompts, **self._scatter_args(workers))
        except agentfm.AgentFMError as exc:
            raise _as_tool_error(exc) from exc
        return _scatter_output(results)


def _scatter_output(results: list[agentfm.ScatterResult]) -> tuple[str, dict[str, Any]]:
    items = [
        {
            "index": r.index,
            "status": r.status,
            "text": r.text,
            "peer_id": r.worker_id,
            "task_id": r.task_id,
            "attempts": r.attempts,
            "error": r.error,
            "files": agentfm.describe_files(r.artifacts),
        }
        for r in results
    ]
    ok = sum(1 for it in items if it["status"] == "success")
    artifact = {"succeeded": ok, "failed": len(items) - ok, "results": items}
    return scatter_summary(items), artifact


class AgentFMToolkit(MeshSettings, BaseToolkit):
    """Discover mesh workers and offer each as a tool, plus one scatter tool.

    Tool names and descriptions come from what each worker advertises (agent name,
    engine, description), made safe for every provider's tool-name rules.

    Example:
        ```python
        from agentfm_integrations.langchain import AgentFMToolkit

        tools = AgentFMToolkit(gateway_url="http://127.0.0.1:8080", model="echo").get_tools()
        ```
    """

    model: str | None = None
    """Keep only workers matching this peer id, agent name or engine (gateway matcher)."""
    agent_name: str | None = None
    """Keep only workers with this agent name."""
    available_only: bool = False
    """Keep only workers that currently have a free slot."""
    include_scatter: bool = True
    """Also return an `AgentFMScatterTool` across the discovered workers."""

    def _filter(self, workers: list[agentfm.WorkerProfile]) -> list[agentfm.WorkerProfile]:
        if self.agent_name is not None:
            wanted = self.agent_name.casefold()
            workers = [w for w in workers if (w.agent_name or "").casefold() == wanted]
        if self.available_only:
            workers = [w for w in workers if w.is_available]
        return workers

    def _discover(self, client: agentfm.AgentFMClient) -> list[agentfm.WorkerProfile]:
        if self.model:
            return self._filter(client.workers.match(self.model))
        return self._filter(client.workers.list())

    def get_tools(self) -> list[BaseTool]:
        """Return one `AgentFMTool` per discovered worker, then the scatter tool."""
        with agentfm.AgentFMClient(**self._sdk_kwargs()) as client:
            workers = self._discover(client)
        return self._tools(workers)

    async def aget_tools(self) -> list[BaseTool]:
        """Async twin of `get_tools`."""
        async with agentfm.AsyncAgentFMClient(**self._sdk_kwargs()) as client:
            if self.model:
                workers = self._filter(await client.workers.match(self.model))
            else:
                workers = self._filter(await client.workers.list())
        return self._tools(workers)

    def _tools(self, workers: list[agentfm.WorkerProfile]) -> list[BaseTool]:
        names = unique_tool_names(
            [w.agent_name or w.name or w.engine or "agentfm_worker" for w in workers],
            [w.peer_id for w in workers],
        )
        tools: list[BaseTool] = [
            AgentFMTool(name=name, description=_describe(w), model=w.peer_id, **self.settings())
            for name, w in zip(names, workers, strict=True)
        ]
        if self.include_scatter and workers:
            tools.append(
                AgentFMScatterTool(
                    name=safe_tool_name("agentfm_scatter"),
                    peer_ids=[w.peer_id for w in workers],
                    description=(
                        "Run several independent instructions in parallel across "
                        f"{len(workers)} AgentFM worker(s) "
                        f"({', '.join(sorted({n for n in names}))}). Input: a list of "
                        "complete plain-text instructions. Returns one line per item."
                    ),
                    **self.settings(),
                )
            )
        return tools


def _describe(worker: agentfm.WorkerProfile) -> str:
    parts = [f"AgentFM agent '{worker.agent_name or worker.name}'"]
    if worker.engine:
        parts.append(f"running {worker.engine}")
    head = " ".join(parts) + "."
    desc = (worker.description or "").strip()
    tail = " Input: a complete plain-text instruction. Files it writes are attached."
    return f"{head} {desc}{tail}" if desc else head + tail
