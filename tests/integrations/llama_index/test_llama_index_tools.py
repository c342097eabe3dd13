"""The tool spec and the task tool, directly and inside a LlamaIndex agent."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import (
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.llms.mock import MockFunctionCallingLLM

from agentfm import ModelNotFoundError
from agentfm_integrations.llama_index import AgentFMTaskTool, AgentFMToolSpec
from tests.helpers import call

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from agentfm.mesh import EmbeddedMesh


def _check_files(files: list[dict[str, Any]]) -> None:
    assert files
    for ref in files:
        data = Path(ref["path"]).read_bytes()
        assert ref["size"] == len(data)
        assert ref["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.fixture
def spec(demo_mesh: EmbeddedMesh, tmp_path: Path) -> AgentFMToolSpec:
    return AgentFMToolSpec(demo_mesh.url, artifacts_dir=str(tmp_path / "artifacts"))


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_task_tool_returns_text_and_artifacts(
    demo_mesh: EmbeddedMesh, tmp_path: Path, mode: str
) -> None:
    tool = AgentFMTaskTool("writer", gateway_url=demo_mesh.url, artifacts_dir=str(tmp_path))
    if mode == "sync":
        out = tool.call(prompt="a note on tides")
    else:
        out = await tool.acall(prompt="a note on tides")
    assert not out.is_error
    assert isinstance(out.blocks[0], TextBlock)
    assert out.content
    assert out.raw_output["peer_id"] == demo_mesh.peer_id("writer")
    assert out.raw_output["task_id"]
    _check_files(out.raw_output["files"])
    tool.close()
    await tool.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_task_tool_attaches_images_on_request(
    li_mesh: EmbeddedMesh, tmp_path: Path, mode: str
) -> None:
    tool = AgentFMTaskTool(
        "painter", gateway_url=li_mesh.url, artifacts_dir=str(tmp_path), include_image_blocks=True
    )
    out = tool.call("a dot") if mode == "sync" else await tool.acall("a dot")
    assert not out.is_error, out.content
    images = [b for b in out.blocks if isinstance(b, ImageBlock)]
    assert len(images) == 1
    assert images[0].image_mimetype == "image/png"
    assert [f["mime_type"] for f in out.raw_output["files"]] == ["image/png"]
    await tool.aclose()
    tool.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_task_tool_errors_become_error_outputs(li_mesh: EmbeddedMesh, mode: str) -> None:
    missing = AgentFMTaskTool("no-such-agent", gateway_url=li_mesh.url)
    out = missing.call(prompt="x") if mode == "sync" else await missing.acall(prompt="x")
    assert out.is_error
    assert isinstance(out.exception, ModelNotFoundError)

    broken = AgentFMTaskTool("broken", gateway_url=li_mesh.url)
    out = broken.call(prompt="x") if mode == "sync" else await broken.acall(prompt="x")
    assert out.is_error
    assert out.exception is not None
    assert "failed" in out.content
    for tool in (missing, broken):
        tool.close()
        await tool.aclose()


def test_tool_spec_lists_three_tools_with_sync_and_async(spec: AgentFMToolSpec) -> None:
    tools = spec.to_tool_list()
    assert [t.metadata.name for t in tools] == ["run_task", "scatter", "list_workers"]
    for tool in tools:
        assert tool.fn is not None
        assert tool.async_fn is not None
        tool.metadata.to_openai_tool()  # raises if the description is too long


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tool_spec_run_task(
    spec: AgentFMToolSpec, demo_mesh: EmbeddedMesh, mode: str
) -> None:
    run_task = spec.to_tool_list()[0]
    out = await call(
        run_task.call if mode == "sync" else run_task.acall, prompt="hi", model="writer"
    )
    assert out.raw_output["peer_id"] == demo_mesh.peer_id("writer")
    _check_files(out.raw_output["files"])
    assert "Files:" in out.content


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tool_spec_scatter(spec: AgentFMToolSpec, mode: str) -> None:
    scatter = spec.to_tool_list()[1]
    prompts = ["one", "two", "three"]
    out = await call(
        scatter.call if mode == "sync" else scatter.acall, prompts=prompts, model="echo"
    )
    report = out.raw_output
    assert report["succeeded"] == 3
    assert [item["index"] for item in report["items"]] == [0, 1, 2]
    assert all(p in item["text"] for p, item in zip(prompts, report["items"], strict=True))
    assert out.content.startswith("3 succeeded, 0 failed")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tool_spec_list_workers(
    spec: AgentFMToolSpec, demo_mesh: EmbeddedMesh, mode: str
) -> None:
    list_workers = spec.to_tool_list()[2]
    out = await call(list_workers.call if mode == "sync" else list_workers.acall)
    for worker in demo_mesh.workers:
        assert worker.peer_id in out.content
    only_echo = await call(
        list_workers.call if mode == "sync" else list_workers.acall, model="echo"
    )
    assert demo_mesh.peer_id("writer") not in only_echo.content


def _scripted_brain(tool_name: str, tool_kwargs: dict[str, Any]) -> MockFunctionCallingLLM:
    """A fake tool-calling LLM: first asks for one tool call, then answers with its result."""

    async def respond(
        messages: list[ChatMessage], **kwargs: Any
    ) -> AsyncGenerator[ChatMessage, None]:
        results = [m for m in messages if m.role == MessageRole.TOOL]
        if not results:
            yield ChatMessage(
                role=MessageRole.ASSISTANT,
                blocks=[
                    ToolCallBlock(
                        tool_call_id="call-1", tool_name=tool_name, tool_kwargs=tool_kwargs
                    )
                ],
            )
        else:
            yield ChatMessage(role=MessageRole.ASSISTANT, content=f"done: {results[-1].content}")

    return MockFunctionCallingLLM(response_generator=respond)


async def _run_agent(agent: FunctionAgent, prompt: str) -> tuple[list[ToolCallResult], str]:
    handler = agent.run(prompt)
    results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
    final = await handler
    return results, str(final)


async def test_function_agent_gets_artifacts_from_the_tool_spec(
    spec: AgentFMToolSpec, demo_mesh: EmbeddedMesh
) -> None:
    brain = _scripted_brain("run_task", {"prompt": "a note on tides", "model": "writer"})
    agent = FunctionAgent(tools=spec.to_tool_list(), llm=brain)
    results, final = await _run_agent(agent, "write a note")
    assert len(results) == 1
    output = results[0].tool_output
    assert not output.is_error
    assert output.raw_output["peer_id"] == demo_mesh.peer_id("writer")
    _check_files(output.raw_output["files"])
    assert final.startswith("done:")


async def test_function_agent_gets_artifacts_from_the_task_tool(
    demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    tool = AgentFMTaskTool(
        "writer", name="writer", gateway_url=demo_mesh.url, artifacts_dir=str(tmp_path)
    )
    brain = _scripted_brain("writer", {"prompt": "a note on tides"})
    agent = FunctionAgent(tools=[tool], llm=brain)
    results, final = await _run_agent(agent, "write a note")
    assert [r.tool_name for r in results] == ["writer"]
    _check_files(results[0].tool_output.raw_output["files"])
    assert results[0].tool_output.content in final
    await tool.aclose()
