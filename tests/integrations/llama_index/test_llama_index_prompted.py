"""Prompted tool calling and structured output of the LlamaIndex `AgentFM`, on the planner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.output_parsers.base import OutputParserException
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, Field

from agentfm_integrations.llama_index import AgentFM, AgentFMTaskTool

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh

TASK = (
    "Ask writer to write 'a note about peer-to-peer meshes', then give the note it wrote "
    "to count_words, and tell me the number of words."
)


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")


def count_words(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


def magic(input: int) -> int:
    """Apply a magic function to an input."""
    return input + 2


def _planner(mesh: EmbeddedMesh, **kw: Any) -> AgentFM:
    return AgentFM(model="planner", gateway_url=mesh.url, api_key=None, **kw)


async def test_function_agent_multi_step(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    llm = _planner(demo_mesh)
    assert llm.metadata.is_function_calling_model is True  # the planner advertises it
    writer = AgentFMTaskTool(
        "writer",
        name="writer",
        description="Writes a note about a topic to answer.md and says how long it is.",
        gateway_url=demo_mesh.url,
        artifacts_dir=str(tmp_path / "files"),
    )
    agent = FunctionAgent(tools=[writer, FunctionTool.from_defaults(count_words)], llm=llm)
    handler = agent.run(TASK)
    results: list[ToolCallResult] = []
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult):
            results.append(event)
    answer = await handler

    assert [r.tool_name for r in results] == ["writer", "count_words"]
    written, counted = results
    files = written.tool_output.raw_output["files"]
    assert [Path(f["path"]).name for f in files] == ["answer.md"]
    note = await asyncio.to_thread(Path(files[0]["path"]).read_text, "utf-8")
    assert "a note about peer-to-peer meshes" in note
    expected = len(written.tool_output.content.split())
    assert counted.tool_kwargs == {"text": written.tool_output.content}
    assert counted.tool_output.raw_output == expected
    assert f"count_words returned {expected}" in str(answer)


def test_echo_is_not_a_function_calling_model(demo_mesh: EmbeddedMesh) -> None:
    echo = AgentFM(model="echo", gateway_url=demo_mesh.url, api_key=None)
    assert echo.metadata.is_function_calling_model is False
    with pytest.raises(ValueError, match="prompted_tools=True"):
        echo.chat_with_tools([FunctionTool.from_defaults(magic)], user_msg="magic(2)")
    forced = AgentFM(model="echo", gateway_url=demo_mesh.url, api_key=None, prompted_tools=True)
    assert forced.metadata.is_function_calling_model is True


def test_tool_selections_invalid_calls_and_metadata(demo_mesh: EmbeddedMesh) -> None:
    llm = _planner(demo_mesh)
    tools = [FunctionTool.from_defaults(magic)]
    good = llm.chat_with_tools(tools, user_msg="What is magic(6)?")
    [selection] = llm.get_tool_calls_from_response(good)
    assert (selection.tool_name, selection.tool_kwargs) == ("magic", {"input": 6})
    assert selection.tool_id
    assert good.additional_kwargs["agentfm"]["prompted"] is True
    assert good.additional_kwargs["usage_estimated"] is True
    assert good.additional_kwargs["prompt_tokens"] > 0

    bad = llm.chat_with_tools(tools, user_msg="What is magic(6)? [planner:wrong-type]")
    assert llm.get_tool_calls_from_response(bad, error_on_no_tool_call=False) == []
    [invalid] = bad.additional_kwargs["invalid_tool_calls"]
    assert "is not of type 'integer'" in invalid["error"]
    with pytest.raises(ValueError, match="is not of type"):
        llm.get_tool_calls_from_response(bad)


async def test_stream_chat_with_tools_gives_one_parsed_response(demo_mesh: EmbeddedMesh) -> None:
    llm = _planner(demo_mesh)
    stream = await llm.astream_chat_with_tools(
        [FunctionTool.from_defaults(magic)], user_msg="magic(3) [planner:prose]"
    )
    responses = [r async for r in stream]
    assert len(responses) == 1
    [selection] = llm.get_tool_calls_from_response(responses[0])
    assert selection.tool_kwargs == {"input": 3}
    assert responses[0].additional_kwargs["agentfm"]["reply_format"] == "fenced"


def test_structured_predict_and_as_structured_llm(demo_mesh: EmbeddedMesh) -> None:
    llm = _planner(demo_mesh)
    joke = llm.structured_predict(Joke, PromptTemplate("A joke about {topic}"), topic="cats")
    assert isinstance(joke, Joke)
    structured = llm.as_structured_llm(Joke)
    reply = structured.chat([ChatMessage(role="user", content="A joke about dogs")])
    assert isinstance(reply.raw, Joke)


async def test_structured_predict_reask_repairs(demo_mesh: EmbeddedMesh) -> None:
    llm = _planner(demo_mesh)
    joke = await llm.astructured_predict(
        Joke, PromptTemplate("A joke about {topic} [planner:wrong-type]"), topic="cats"
    )
    assert isinstance(joke, Joke)


def test_structured_predict_bound_raises(demo_mesh: EmbeddedMesh) -> None:
    llm = _planner(demo_mesh, max_reasks=1)
    with pytest.raises(OutputParserException, match="after 2 attempt"):
        llm.structured_predict(
            Joke, PromptTemplate("A joke [planner:wrong-type] [planner:stubborn]")
        )


def test_plain_chat_has_estimated_usage(demo_mesh: EmbeddedMesh) -> None:
    llm = AgentFM(model="echo", gateway_url=demo_mesh.url, api_key=None)
    response = llm.complete("hello there")
    assert response.additional_kwargs["usage_estimated"] is True
    assert response.additional_kwargs["total_tokens"] == (
        response.additional_kwargs["prompt_tokens"]
        + response.additional_kwargs["completion_tokens"]
    )
    *_, last = llm.stream_chat([ChatMessage(role="user", content="hello")])
    assert last.additional_kwargs["usage_estimated"] is True
    batch = llm.batch_complete(["one", "two words"])
    assert [r.additional_kwargs["usage_estimated"] for r in batch] == [True, True]
    assert batch[1].additional_kwargs["prompt_tokens"] == 3  # "two words": 9 chars
