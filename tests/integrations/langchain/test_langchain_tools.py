"""AgentFM tools, scatter tool and toolkit against real embedded meshes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage

from agentfm_integrations.langchain import AgentFMScatterTool, AgentFMTool, AgentFMToolkit
from agentfm_integrations.langchain._convert import TOOL_NAME_RE
from tests.integrations.langchain.conftest import ENGINE

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.tools import BaseTool

    from agentfm.mesh import EmbeddedMesh


def _call(name: str, args: dict[str, Any], call_id: str = "call-1") -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "args": args}


def _check_files(files: list[dict[str, Any]], root: str) -> None:
    assert files
    for ref in files:
        path = Path(ref["path"])
        assert path.is_relative_to(Path(root).resolve())
        data = path.read_bytes()
        assert ref["size"] == len(data)
        assert ref["sha256"] == hashlib.sha256(data).hexdigest()
        assert ref["mime_type"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_artifact_reaches_the_tool_message(
    demo_mesh: EmbeddedMesh, artifacts_dir: str, mode: str
) -> None:
    tool = AgentFMTool(
        model="writer", gateway_url=demo_mesh.url, api_key=None, artifacts_dir=artifacts_dir
    )
    call = _call(tool.name, {"prompt": "a short report"})
    msg = tool.invoke(call) if mode == "sync" else await tool.ainvoke(call)
    assert isinstance(msg, ToolMessage)
    assert msg.status == "success"
    assert msg.tool_call_id == "call-1"
    assert msg.artifact["peer_id"] == demo_mesh.peer_id("writer")
    assert msg.artifact["task_id"]
    _check_files(msg.artifact["files"], artifacts_dir)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_mesh_error_becomes_an_error_tool_message(
    demo_mesh: EmbeddedMesh, artifacts_dir: str, mode: str
) -> None:
    tool = AgentFMTool(model="no-such-agent", gateway_url=demo_mesh.url, api_key=None)
    call = _call(tool.name, {"prompt": "hi"})
    msg = tool.invoke(call) if mode == "sync" else await tool.ainvoke(call)
    assert isinstance(msg, ToolMessage)
    assert msg.status == "error"
    # NoWorkerForModelError is the SDK's ModelNotFoundError for a model nothing matches.
    assert "NoWorkerForModelError" in str(msg.content)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_scatter_tool_lists_partial_failures(
    failing_mesh: EmbeddedMesh, mode: str, artifacts_dir: str
) -> None:
    tool = AgentFMScatterTool(
        model=ENGINE, gateway_url=failing_mesh.url, api_key=None, artifacts_dir=artifacts_dir
    )
    call = _call(tool.name, {"prompts": ["first", "FAIL second", "third"]})
    msg = tool.invoke(call) if mode == "sync" else await tool.ainvoke(call)
    assert isinstance(msg, ToolMessage)
    assert msg.status == "success"
    lines = str(msg.content).splitlines()
    assert lines[0] == "2/3 prompts succeeded."
    assert lines[1].startswith("[0] ok")
    assert lines[2].startswith("[1] FAILED")
    assert lines[3].startswith("[2] ok")
    art = msg.artifact
    assert (art["succeeded"], art["failed"]) == (2, 1)
    assert [r["status"] for r in art["results"]] == ["success", "failed", "success"]
    assert "third" in art["results"][2]["text"]
    assert art["results"][1]["error"]


def test_toolkit_discovers_workers_with_safe_names(demo_mesh: EmbeddedMesh) -> None:
    tools = AgentFMToolkit(gateway_url=demo_mesh.url, api_key=None).get_tools()
    *workers, scatter = tools
    assert len(workers) == len(demo_mesh.workers)
    assert isinstance(scatter, AgentFMScatterTool)
    names = [t.name for t in tools]
    assert len(set(names)) == len(names)
    assert all(TOOL_NAME_RE.match(n) for n in names)
    by_peer = {t.model: t for t in workers if isinstance(t, AgentFMTool)}
    assert set(by_peer) == {w.peer_id for w in demo_mesh.workers}
    writer = by_peer[demo_mesh.peer_id("writer")]
    assert writer.name.startswith("writer")
    assert "writer" in writer.description


async def test_toolkit_filters(demo_mesh: EmbeddedMesh) -> None:
    kit = AgentFMToolkit(gateway_url=demo_mesh.url, api_key=None, model="echo")
    echo_peers = {w.peer_id for w in demo_mesh.workers if w.engine == "echo"}
    tools = await kit.aget_tools()
    assert {t.model for t in tools if isinstance(t, AgentFMTool)} == echo_peers
    only_writer = AgentFMToolkit(
        gateway_url=demo_mesh.url, api_key=None, agent_name="WRITER", include_scatter=False
    ).get_tools()
    assert [t.model for t in only_writer] == [demo_mesh.peer_id("writer")]  # type: ignore[attr-defined]
    available = AgentFMToolkit(
        gateway_url=demo_mesh.url, api_key=None, available_only=True
    ).get_tools()
    assert len(available) == len(demo_mesh.workers) + 1  # idle mesh: all free
    assert AgentFMToolkit(gateway_url=demo_mesh.url, api_key=None, model="nope").get_tools() == []


class ScriptedToolModel(GenericFakeChatModel):
    """A fake chat model that emits scripted tool calls (ChatAgentFM does not call tools)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolModel:
        return self


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_langgraph_react_agent_returns_the_files(
    demo_mesh: EmbeddedMesh, artifacts_dir: str
) -> None:
    from langgraph.prebuilt import create_react_agent

    tool: BaseTool = AgentFMTool(
        model="writer",
        name="writer",
        description="Writes a report file.",
        gateway_url=demo_mesh.url,
        api_key=None,
        artifacts_dir=artifacts_dir,
    )
    script = iter(
        [
            AIMessage("", tool_calls=[_call("writer", {"prompt": "report on mesh"}, "w1")]),
            AIMessage("The report is written."),
        ]
    )
    agent = create_react_agent(ScriptedToolModel(messages=script), [tool])
    state = agent.invoke({"messages": [("human", "write the report")]})
    tool_messages = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 1
    assert tool_messages[0].status == "success"
    _check_files(tool_messages[0].artifact["files"], artifacts_dir)
    assert state["messages"][-1].content == "The report is written."
