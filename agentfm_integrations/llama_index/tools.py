"""Mesh agents as LlamaIndex tools: a tool spec, and a task tool that returns artifacts.

Agents read a tool's `ToolOutput.blocks`; applications read `ToolOutput.raw_output`,
which is where the artifacts are (`{"task_id", "peer_id", "files": [...]}`). In a
`FunctionAgent`/`ReActAgent` run they arrive in the streamed `ToolCallResult` events:

```python
handler = agent.run("Write the report")
async for event in handler.stream_events():
    if isinstance(event, ToolCallResult) and not event.tool_output.is_error:
        for ref in event.tool_output.raw_output["files"]:
            print(ref["path"], ref["mime_type"], ref["size"], ref["sha256"])
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ContentBlock, TextBlock
from llama_index.core.bridge.pydantic import BaseModel, Field
from llama_index.core.tools.tool_spec.base import SPEC_FUNCTION_TYPE, BaseToolSpec
from llama_index.core.tools.types import AsyncBaseTool, ToolMetadata, ToolOutput

from agentfm import AgentFMClient, AgentFMError, AsyncAgentFMClient, describe_files
from agentfm_integrations import _tasks
from agentfm_integrations._clients import ClientHolder, client_kwargs
from agentfm_integrations.llama_index._convert import image_blocks

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentfm import FileRef, ScatterResult, TaskResult, WorkerProfile

__all__ = ["AgentFMTaskTool", "AgentFMToolSpec", "ScatterReport", "TaskReport"]

_SUMMARY_CHARS = 500
_FAILOVERS = 2
"""Untried peers a task moves to when its worker fails before answering (as in a scatter)."""


class TaskReport(dict[str, Any]):
    """One task's outcome: a mapping for the application, its text for the LLM.

    Keys: `text`, `task_id`, `peer_id`, `files` (a list of `FileRef`). `str()` gives the
    agent's text followed by the produced file paths, which is what a tool-calling LLM sees.
    """

    def __str__(self) -> str:
        files = self.get("files") or []
        if not files:
            return str(self.get("text", ""))
        listing = "\n".join(f"- {ref['path']} ({ref['mime_type']})" for ref in files)
        return f"{self.get('text', '')}\n\nFiles:\n{listing}"


class ScatterReport(dict[str, Any]):
    """A scatter's outcome: per-item results for the application, a summary for the LLM.

    Keys: `items`, a list of dicts with `index`, `ok`, `text`, `error`, `task_id`,
    `peer_id`, `attempts` and `files`; `succeeded`; `failed`.
    """

    def __str__(self) -> str:
        lines = [f"{self['succeeded']} succeeded, {self['failed']} failed"]
        for item in self["items"]:
            if item["ok"]:
                text = " ".join(str(item["text"]).split())[:_SUMMARY_CHARS]
                lines.append(f"[{item['index']}] ok: {text}")
            else:
                lines.append(f"[{item['index']}] failed: {item['error']}")
        return "\n".join(lines)


def _task_report(result: TaskResult) -> TaskReport:
    return TaskReport(
        text=result.text,
        task_id=result.task_id,
        peer_id=str(result.worker_id),
        files=describe_files(result.artifacts),
    )


def _scatter_report(results: Sequence[ScatterResult]) -> ScatterReport:
    items = [
        {
            "index": r.index,
            "ok": r.status == "success",
            "text": r.text,
            "error": r.error,
            "task_id": r.task_id,
            "peer_id": str(r.worker_id) if r.worker_id else None,
            "attempts": r.attempts,
            "files": describe_files(r.artifacts),
        }
        for r in sorted(results, key=lambda r: r.index)
    ]
    succeeded = sum(1 for item in items if item["ok"])
    return ScatterReport(items=items, succeeded=succeeded, failed=len(items) - succeeded)


def _holder(
    gateway_url: str | None,
    api_key: str | None,
    timeout: float | None,
    artifacts_dir: str | None,
    client: AgentFMClient | None,
    async_client: AsyncAgentFMClient | None,
) -> ClientHolder:
    settings = client_kwargs(
        gateway_url=gateway_url,
        api_key=api_key,
        timeout=timeout,
        retries=None,
        artifacts_dir=artifacts_dir,
    )
    return ClientHolder(settings, client=client, async_client=async_client)


def _run(client: AgentFMClient, model: str, prompt: str, timeout: float | None) -> TaskResult:
    result, _ = _tasks.run_task(
        client, model=model, prompt=prompt, max_retries=_FAILOVERS, timeout=timeout
    )
    return result


async def _arun(
    client: AsyncAgentFMClient, model: str, prompt: str, timeout: float | None
) -> TaskResult:
    result, _ = await _tasks.arun_task(
        client, model=model, prompt=prompt, max_retries=_FAILOVERS, timeout=timeout
    )
    return result


def _worker_line(worker: WorkerProfile) -> str:
    return (
        f"{worker.peer_id} name={worker.agent_name or '-'} engine={worker.engine or '-'} "
        f"status={worker.status} load={worker.current_tasks}/{worker.max_tasks}"
        + (f" - {worker.description}" if worker.description else "")
    )


class AgentFMToolSpec(BaseToolSpec):
    """Run tasks on mesh agents, scatter prompts across them, and list them.

    Each function has a sync and an async twin; `to_tool_list()` gives one `FunctionTool`
    per pair. `run_task` and `scatter` return mappings whose `str()` is the text for the
    LLM and whose items (task ids, peer ids, artifact files) reach the application as
    `ToolOutput.raw_output`.

    Example:
        ```python
        spec = AgentFMToolSpec(gateway_url="http://127.0.0.1:8080")
        agent = FunctionAgent(tools=spec.to_tool_list(), llm=llm)
        ```
    """

    spec_functions: list[SPEC_FUNCTION_TYPE] = [  # noqa: RUF012 - BaseToolSpec's own shape
        ("run_task", "arun_task"),
        ("scatter", "ascatter"),
        ("list_workers", "alist_workers"),
    ]

    def __init__(
        self,
        gateway_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | None = None,
        artifacts_dir: str | None = None,
        max_concurrency: int | None = None,
        client: AgentFMClient | None = None,
        async_client: AsyncAgentFMClient | None = None,
    ) -> None:
        """Configure the tools.

        Args:
            gateway_url: Gateway URL; None reads `AGENTFM_GATEWAY_URL`, then the default.
            api_key: Bearer key; None reads `AGENTFM_API_KEY`.
            timeout: Per-task timeout in seconds; None waits for the agent.
            artifacts_dir: Where artifact files are extracted; None uses the SDK default.
            max_concurrency: Scatter items in flight at once; None: the SDK scatter
                sizes it by the matched peers' advertised task slots.
            client: A sync SDK client to use instead of building one.
            async_client: An async SDK client to use instead of building one per loop.
        """
        self._timeout = timeout
        self._max_concurrency = max_concurrency
        self._clients = _holder(gateway_url, api_key, timeout, artifacts_dir, client, async_client)

    def run_task(self, prompt: str, model: str) -> TaskReport:
        """Run one task on a mesh agent and return its answer and the files it produced.

        Args:
            prompt: The instruction for the agent.
            model: A worker peer id, agent name or engine name (see list_workers).
        """
        return _task_report(_run(self._clients.sync, model, prompt, self._timeout))

    async def arun_task(self, prompt: str, model: str) -> TaskReport:
        """Run one task on a mesh agent and return its answer and the files it produced.

        Args:
            prompt: The instruction for the agent.
            model: A worker peer id, agent name or engine name (see list_workers).
        """
        return _task_report(await _arun(self._clients.async_, model, prompt, self._timeout))

    def scatter(self, prompts: list[str], model: str) -> ScatterReport:
        """Run many prompts in parallel across all agents matching model, with failover.

        Args:
            prompts: One instruction per task.
            model: An agent name or engine name shared by several workers.
        """
        client = self._clients.sync
        results = client.tasks.scatter_by_model(
            prompts, model=model, max_concurrency=self._max_concurrency, timeout=self._timeout
        )
        return _scatter_report(results)

    async def ascatter(self, prompts: list[str], model: str) -> ScatterReport:
        """Run many prompts in parallel across all agents matching model, with failover.

        Args:
            prompts: One instruction per task.
            model: An agent name or engine name shared by several workers.
        """
        results = await self._clients.async_.tasks.scatter_by_model(
            prompts, model=model, max_concurrency=self._max_concurrency, timeout=self._timeout
        )
        return _scatter_report(results)

    def list_workers(self, model: str | None = None, available_only: bool = False) -> str:
        """List the mesh's workers: peer id, agent name, engine, status and load.

        Args:
            model: Only workers matching this peer id, agent name or engine.
            available_only: Only workers with a free task slot.
        """
        workers = self._clients.sync.workers.list(model=model, available_only=available_only)
        return "\n".join(_worker_line(w) for w in workers) or "no workers"

    async def alist_workers(self, model: str | None = None, available_only: bool = False) -> str:
        """List the mesh's workers: peer id, agent name, engine, status and load.

        Args:
            model: Only workers matching this peer id, agent name or engine.
            available_only: Only workers with a free task slot.
        """
        workers = await self._clients.async_.workers.list(
            model=model, available_only=available_only
        )
        return "\n".join(_worker_line(w) for w in workers) or "no workers"


class TaskToolInput(BaseModel):
    """Arguments of `AgentFMTaskTool`."""

    prompt: str = Field(description="The instruction for the mesh agent.")


_DEFAULT_DESCRIPTION = (
    "Run a task on an AgentFM mesh agent. Give the full instruction as prompt; "
    "the answer is the agent's text, and any files it writes are returned as artifacts."
)


class AgentFMTaskTool(AsyncBaseTool):
    """Run a task on one mesh agent; the output carries the text and the artifact files.

    `ToolOutput.blocks` holds the agent's text (plus an `ImageBlock` per image artifact
    when `include_image_blocks` is set, for LLMs that accept images in tool results);
    `ToolOutput.raw_output` is `{"task_id", "peer_id", "files": [FileRef, ...]}`. Mesh
    errors come back as `is_error=True` outputs, never as exceptions.

    Example:
        ```python
        tool = AgentFMTaskTool(model="writer", gateway_url=mesh_url)
        out = await tool.acall(prompt="Write a haiku about the sea")
        out.raw_output["files"]  # [{"path": ".../answer.md", "mime_type": ...}]
        ```
    """

    def __init__(
        self,
        model: str,
        *,
        name: str = "agentfm_task",
        description: str = _DEFAULT_DESCRIPTION,
        return_direct: bool = False,
        include_image_blocks: bool = False,
        gateway_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        artifacts_dir: str | None = None,
        client: AgentFMClient | None = None,
        async_client: AsyncAgentFMClient | None = None,
    ) -> None:
        """Configure the tool.

        Args:
            model: Peer id (pins one worker), agent name or engine (least-loaded match).
            name: Tool name shown to the LLM.
            description: Tool description shown to the LLM (at most 1024 characters).
            return_direct: End the agent run with this tool's output.
            include_image_blocks: Also attach image artifacts as `ImageBlock`s.
            gateway_url: Gateway URL; None reads `AGENTFM_GATEWAY_URL`, then the default.
            api_key: Bearer key; None reads `AGENTFM_API_KEY`.
            timeout: Task timeout in seconds; None waits for the agent.
            artifacts_dir: Where artifact files are extracted; None uses the SDK default.
            client: A sync SDK client to use instead of building one.
            async_client: An async SDK client to use instead of building one per loop.
        """
        if len(description) > 1024:
            raise ValueError("tool descriptions are limited to 1024 characters")
        self.model = model
        self.include_image_blocks = include_image_blocks
        self._timeout = timeout
        self._metadata = ToolMetadata(
            name=name,
            description=description,
            fn_schema=TaskToolInput,
            return_direct=return_direct,
        )
        self._clients = _holder(gateway_url, api_key, timeout, artifacts_dir, client, async_client)

    @property
    def metadata(self) -> ToolMetadata:
        """Name, description and argument schema shown to the LLM."""
        return self._metadata

    @staticmethod
    def _prompt(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        prompt = kwargs.get("prompt", kwargs.get("input"))
        if prompt is None and args:
            prompt = args[0]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("AgentFMTaskTool needs a non-empty `prompt` string")
        return prompt

    def _output(self, raw_input: dict[str, Any], result: TaskResult) -> ToolOutput:
        files: list[FileRef] = describe_files(result.artifacts)
        blocks: list[ContentBlock] = [TextBlock(text=result.text)]
        if self.include_image_blocks:
            blocks.extend(image_blocks(files))
        return ToolOutput(
            tool_name=self._metadata.get_name(),
            blocks=blocks,
            raw_input=raw_input,
            raw_output={
                "task_id": result.task_id,
                "peer_id": str(result.worker_id),
                "files": files,
            },
        )

    def _error(self, raw_input: dict[str, Any], exc: Exception) -> ToolOutput:
        return ToolOutput(
            tool_name=self._metadata.get_name(),
            content=f"AgentFM task failed: {type(exc).__name__}: {exc}",
            raw_input=raw_input,
            raw_output={"task_id": None, "peer_id": None, "files": [], "error": str(exc)},
            is_error=True,
            exception=exc,
        )

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the task synchronously."""
        raw_input = {"args": args, "kwargs": kwargs}
        try:
            prompt = self._prompt(args, kwargs)
            result = _run(self._clients.sync, self.model, prompt, self._timeout)
        except (AgentFMError, ValueError) as exc:
            return self._error(raw_input, exc)
        return self._output(raw_input, result)

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the task without blocking the event loop."""
        raw_input = {"args": args, "kwargs": kwargs}
        try:
            prompt = self._prompt(args, kwargs)
            result = await _arun(self._clients.async_, self.model, prompt, self._timeout)
        except (AgentFMError, ValueError) as exc:
            return self._error(raw_input, exc)
        return self._output(raw_input, result)

    def close(self) -> None:
        """Close the sync client this tool built."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the async client this tool built for the running loop."""
        await self._clients.aclose()
