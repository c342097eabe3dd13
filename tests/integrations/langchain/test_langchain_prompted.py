"""Prompted tool calling and structured output of ChatAgentFM, against the demo `planner`.

The planner is a deterministic worker that reads the reply contract from its prompt; the
``[planner:...]`` directives in a request make it slip like a small model would.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.exceptions import OutputParserException
from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

import agentfm
from agentfm_integrations.langchain import AgentFMTool, ChatAgentFM
from tests.integrations.langchain.conftest import ScatterSpy

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh

TASK = (
    "Ask writer to write 'a note about peer-to-peer meshes', then give the note it wrote "
    "to count_words, and tell me the number of words."
)


class Starts(BaseCallbackHandler):
    """Count chat-model runs (each one is one task on the mesh)."""

    def __init__(self) -> None:
        self.count = 0

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.count += 1


class Joke(BaseModel):
    """A joke."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")
    rating: int = Field(description="how funny, 1 to 10")


class JokeDict(TypedDict):
    """A joke."""

    setup: str
    punchline: str


@tool
def magic(input: int) -> int:
    """Apply a magic function to an input."""
    return input + 2


@tool
def count_words(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())


def _planner(mesh: EmbeddedMesh, tmp_path: Path, **kw: Any) -> ChatAgentFM:
    return ChatAgentFM(
        model="planner",
        gateway_url=mesh.url,
        api_key=None,
        artifacts_dir=str(tmp_path / "artifacts"),
        **kw,
    )


def _writer(mesh: EmbeddedMesh, tmp_path: Path) -> AgentFMTool:
    return AgentFMTool(
        model="writer",
        name="writer",
        description="Writes a note about a topic to answer.md and says how long it is.",
        gateway_url=mesh.url,
        api_key=None,
        artifacts_dir=str(tmp_path / "tool-files"),
    )


def _check_agent_run(messages: list[Any]) -> None:
    """Two tool calls in order, the file read from the artifact, and the right count."""
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    assert [m.name for m in tool_messages] == ["writer", "count_words"]
    writer_result, count_result = tool_messages
    files = writer_result.artifact["files"]
    assert [Path(f["path"]).name for f in files] == ["answer.md"]
    note = Path(files[0]["path"]).read_text(encoding="utf-8")
    assert "a note about peer-to-peer meshes" in note
    # The planner passed the writer's answer on to count_words: the count is of that text.
    expected = len(str(writer_result.content).split())
    assert str(count_result.content) == str(expected)
    final = messages[-1]
    assert isinstance(final, AIMessage)
    assert not final.tool_calls
    assert f"count_words returned {expected}" in str(final.content)
    prompted = [
        m for m in messages if isinstance(m, AIMessage) and m.response_metadata.get("agentfm")
    ]
    assert all(m.response_metadata["agentfm"]["prompted"] for m in prompted)


# ------------------------------------------------------------------ agents


def test_create_agent_multi_step(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    from langchain.agents import create_agent

    agent = create_agent(_planner(demo_mesh, tmp_path), [_writer(demo_mesh, tmp_path), count_words])
    state = agent.invoke({"messages": [HumanMessage(TASK)]})
    _check_agent_run(state["messages"])


async def test_create_react_agent_multi_step_async(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():
        # LangGraph 1.x points to langchain.agents.create_agent; this is the same loop.
        warnings.simplefilter("ignore")
        agent = create_react_agent(
            _planner(demo_mesh, tmp_path), [_writer(demo_mesh, tmp_path), count_words]
        )
    state = await agent.ainvoke({"messages": [HumanMessage(TASK)]})
    _check_agent_run(state["messages"])


# ------------------------------------------------------------------ tool calls


def test_tool_call_has_id_metadata_and_finish_reason(
    demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    msg = _planner(demo_mesh, tmp_path).bind_tools([magic]).invoke("What is magic(7)?")
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("magic", {"input": 7})]
    assert msg.tool_calls[0]["id"]
    assert msg.invalid_tool_calls == []
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    prompted = msg.response_metadata["agentfm"]
    assert prompted["prompted"] is True
    assert prompted["mode"] == "tools"
    assert prompted["reply_format"] == "json"


@pytest.mark.parametrize(
    ("directive", "error"),
    [
        ("wrong-type", "is not of type 'integer'"),
        ("unknown-tool", "unknown tool 'web_search'"),
    ],
)
def test_mistakes_become_invalid_tool_calls(
    demo_mesh: EmbeddedMesh, tmp_path: Path, directive: str, error: str
) -> None:
    llm = _planner(demo_mesh, tmp_path).bind_tools([magic])
    msg = llm.invoke(f"What is magic(7)? [planner:{directive}]")
    assert msg.tool_calls == []
    [bad] = msg.invalid_tool_calls
    assert error in str(bad["error"])
    assert bad["id"]
    assert msg.response_metadata["agentfm"]["invalid_tool_calls"][0]["error"] == bad["error"]


def test_prose_around_json_still_parses(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    msg = _planner(demo_mesh, tmp_path).bind_tools([magic]).invoke("magic(4) [planner:prose]")
    assert [c["args"] for c in msg.tool_calls] == [{"input": 4}]
    assert msg.response_metadata["agentfm"]["reply_format"] == "fenced"


def test_required_tool_choice_violation_is_reported(
    demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    llm = _planner(demo_mesh, tmp_path).bind_tools([magic], tool_choice="any")
    msg = llm.invoke("magic(4) [planner:no-json]")
    assert msg.tool_calls == []
    [violation] = msg.invalid_tool_calls
    assert "required a tool call" in str(violation["error"])
    assert msg.response_metadata["agentfm"]["reply_format"] == "text"


def test_named_tool_choice_is_honoured(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    llm = _planner(demo_mesh, tmp_path).bind_tools([magic, count_words], tool_choice="count_words")
    msg = llm.invoke("What is magic(3)?")
    assert [c["name"] for c in msg.tool_calls] == ["count_words"]


def test_stream_delivers_tool_calls_whole_in_one_chunk(
    demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    llm = _planner(demo_mesh, tmp_path).bind_tools([magic])
    chunks = list(llm.stream("What is magic(5)?"))
    with_calls = [c for c in chunks if c.tool_call_chunks]
    assert len(with_calls) == 1
    [chunk] = with_calls
    assert isinstance(chunk, AIMessageChunk)
    assert chunk.chunk_position == "last"
    assert [c["args"] for c in chunk.tool_calls] == [{"input": 5}]
    assert chunk.usage_metadata is not None


def test_batch_of_tool_prompts_is_one_scatter(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    with agentfm.AgentFMClient(demo_mesh.url, api_key=None, routing_warning=False) as client:
        spy = ScatterSpy(client)
        llm = _planner(demo_mesh, tmp_path, client=client).bind_tools([magic])
        out = llm.batch([f"What is magic({i})?" for i in range(6)])
    assert spy.calls == [6]
    assert [m.tool_calls[0]["args"]["input"] for m in out] == list(range(6))


def test_echo_worker_refuses_prompted_tools(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    echo = ChatAgentFM(model="echo", gateway_url=demo_mesh.url, api_key=None)
    with pytest.raises(ValueError, match="prompted_tools=True"):
        echo.bind_tools([magic]).invoke("magic(1)")
    # Turned on by hand it runs; the echo program does not follow the contract, which the
    # metadata says instead of pretending there was an answer.
    forced = echo.model_copy(update={"prompted_tools": True}).bind_tools([magic])
    msg = forced.invoke("magic(1)")
    assert msg.tool_calls == []
    assert msg.response_metadata["agentfm"]["prompted"] is True


def test_disabled_flag_and_empty_tools(demo_mesh: EmbeddedMesh) -> None:
    off = ChatAgentFM(
        model="planner", gateway_url=demo_mesh.url, api_key=None, prompted_tools=False
    )
    with pytest.raises(ValueError, match="prompted"):
        off.bind_tools([magic])
    with pytest.raises(ValueError, match="prompted"):
        off.with_structured_output(Joke)
    assert off.bind_tools([]).invoke("hi").content  # no tools: a plain call
    with pytest.raises(ValueError, match="not a bound tool"):
        ChatAgentFM(model="planner").bind_tools([magic], tool_choice="nope")


# ------------------------------------------------------------------ structured output


@pytest.mark.parametrize("schema", [Joke, Joke.model_json_schema(), JokeDict])
def test_structured_output_schema_kinds(
    demo_mesh: EmbeddedMesh, tmp_path: Path, schema: Any
) -> None:
    out = _planner(demo_mesh, tmp_path).with_structured_output(schema).invoke("A joke about cats")
    if schema is Joke:
        assert isinstance(out, Joke)
        assert out.rating == 1
    else:
        assert isinstance(out, dict)
        assert set(out) >= {"setup", "punchline"}


def test_reask_repairs_an_invalid_answer(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    starts = Starts()
    structured = _planner(demo_mesh, tmp_path).with_structured_output(Joke, include_raw=True)
    out = structured.invoke(
        "A joke about cats [planner:wrong-type]", config={"callbacks": [starts]}
    )
    assert starts.count == 2  # the first answer failed, one re-ask fixed it
    assert out["parsing_error"] is None
    assert isinstance(out["parsed"], Joke)
    assert isinstance(out["raw"], AIMessage)


def test_reask_bound_raises_output_parser_exception(
    demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    starts = Starts()
    structured = _planner(demo_mesh, tmp_path, max_reasks=2).with_structured_output(Joke)
    with pytest.raises(OutputParserException, match="after 3 attempt") as info:
        structured.invoke(
            "A joke [planner:wrong-type] [planner:stubborn]", config={"callbacks": [starts]}
        )
    assert starts.count == 3
    assert info.value.llm_output  # the last reply is kept for debugging


def test_batch_reasks_only_failed_items(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    with agentfm.AgentFMClient(demo_mesh.url, api_key=None, routing_warning=False) as client:
        spy = ScatterSpy(client)
        structured = _planner(demo_mesh, tmp_path, client=client).with_structured_output(Joke)
        prompts = ["cats", "dogs [planner:wrong-type]", "birds", "fish [planner:wrong-type]"]
        out = structured.batch(prompts)
    assert spy.calls == [4, 2]  # one scatter for all, one for the two that failed
    assert all(isinstance(o, Joke) for o in out)
    assert [o.setup for o in out] == ["cats", "dogs", "birds", "fish"]


async def test_abatch_keeps_failures_per_item(demo_mesh: EmbeddedMesh, tmp_path: Path) -> None:
    structured = _planner(demo_mesh, tmp_path, max_reasks=1).with_structured_output(Joke)
    out = await structured.abatch(
        ["cats", "dogs [planner:wrong-type] [planner:stubborn]"], return_exceptions=True
    )
    assert isinstance(out[0], Joke)
    assert isinstance(out[1], OutputParserException)


@pytest.mark.filterwarnings("ignore:The function `load` is in beta")
def test_serialization_round_trip() -> None:
    llm = ChatAgentFM(model="planner", gateway_url="http://127.0.0.1:9", api_key="secret-key-1234")
    data = dumpd(llm)
    assert "secret-key-1234" not in str(data)
    back = load(
        data,
        valid_namespaces=["agentfm_integrations"],
        allowed_objects=[ChatAgentFM],
        secrets_map={"AGENTFM_API_KEY": "secret-key-1234"},
    )
    assert isinstance(back, ChatAgentFM)
    assert back.model_name == "planner"
    assert back.api_key is not None
    assert back.api_key.get_secret_value() == "secret-key-1234"


async def test_one_async_client_per_model_and_loop(
    demo_mesh: EmbeddedMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentfm_integrations import _clients

    built: list[object] = []
    real = _clients.AsyncAgentFMClient

    def counting(*args: Any, **kwargs: Any) -> Any:
        client = real(*args, **kwargs)
        built.append(client)
        return client

    monkeypatch.setattr(_clients, "AsyncAgentFMClient", counting)
    llm = _planner(demo_mesh, tmp_path)
    await llm.ainvoke("one")
    await llm.ainvoke("two")
    _ = [c async for c in llm.astream("three")]
    await llm.abatch(["four", "five"])
    assert len(built) == 1  # every async call on this loop shared one client (one pool)
    await llm.aclose()


# ------------------------------------------------------------------ streaming the final answer

# Longer than one 64 KiB read (the mesh's pipe reads and the client's socket reads), so
# the reply reaches the client in at least two pieces however the machine schedules.
LONG_REQUEST = "please just answer this " * 4000


def _joined(chunks: list[Any]) -> AIMessageChunk:
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert isinstance(full, AIMessageChunk)
    return full


def _check_streamed_answer(chunks: list[Any], invoked: AIMessage) -> None:
    texts = [c for c in chunks if c.content]
    assert len(texts) > 1  # the final answer streamed, not one chunk at the end
    full = _joined(chunks)
    assert full.content == invoked.content
    assert str(full.content).startswith("No tool is needed for this.")
    assert not full.tool_calls
    assert not full.invalid_tool_calls
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    assert chunks[-1].chunk_position == "last"
    meta = full.response_metadata["agentfm"]
    assert meta["prompted"] is True
    assert meta["reply_format"] == "json"
    assert "stream_mismatch" not in meta


def test_stream_final_answer_streams_and_joins_to_invoke(
    demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            self.tokens.append(token)

    seen = Tokens()
    llm = _planner(demo_mesh, tmp_path, callbacks=[seen]).bind_tools([magic])
    chunks = list(llm.stream(LONG_REQUEST))
    _check_streamed_answer(chunks, llm.invoke(LONG_REQUEST))
    # Each streamed piece went to the callbacks as a token (the last chunk's rest does not).
    assert "".join(seen.tokens) == "".join(str(c.content) for c in chunks[:-1])
    assert len(seen.tokens) > 1


async def test_astream_final_answer_streams_and_joins_to_invoke(
    demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    llm = _planner(demo_mesh, tmp_path).bind_tools([magic])
    chunks = [c async for c in llm.astream(LONG_REQUEST)]
    _check_streamed_answer(chunks, await llm.ainvoke(LONG_REQUEST))


async def test_astream_delivers_tool_calls_whole_in_one_chunk(
    demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    llm = _planner(demo_mesh, tmp_path).bind_tools([magic])
    chunks = [c async for c in llm.astream("What is magic(5)?")]
    with_calls = [c for c in chunks if c.tool_call_chunks]
    assert len(with_calls) == 1
    assert with_calls[0] is chunks[-1]
    assert not any(c.content for c in chunks)  # the JSON of a call never leaks as text
    assert [c["args"] for c in _joined(chunks).tool_calls] == [{"input": 5}]


def test_stream_of_a_prose_wrapped_answer_is_parsed_whole(
    demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    llm = _planner(demo_mesh, tmp_path).bind_tools([magic])
    request = "Say hi [planner:prose]"
    chunks = list(llm.stream(request))
    assert [bool(c.content) for c in chunks] == [True]  # held back, then given once
    assert chunks[0].content == llm.invoke(request).content
    assert chunks[0].response_metadata["agentfm"]["reply_format"] == "fenced"


def _last_chunk_after(reply: str) -> tuple[str, AIMessageChunk]:
    """Feed a reply through the extractor and build the last chunk as `_stream` does."""
    from agentfm_integrations import _tool_calling as tc
    from agentfm_integrations._tasks import StreamEnd
    from agentfm_integrations.langchain._chat_output import last_chunk
    from agentfm_integrations.langchain._prompted import Prompted

    request = Prompted.from_kwargs({"tools": [magic]})
    assert request is not None
    answer = tc.FinalAnswerStream()
    streamed = answer.feed(reply)
    last = last_chunk(
        prompt="p",
        text=reply,
        model="planner",
        end=StreamEnd("peer", "task", files_incoming=False),
        files=[],
        request=request,
        streamed=answer.finish(),
    ).message
    assert isinstance(last, AIMessageChunk)
    return streamed, last


@pytest.mark.parametrize(
    ("reply", "streamed", "rest"),
    [
        ('{"final_answer": "all of it"}', "all of it", ""),
        ('{"final_answer": "ab\ncd"}', "ab", "\ncd"),  # raw newline: repaired at the end
        (
            '{"final_answer": "note", "tool_calls": [{"name": "magic", "arguments": {}}]}',
            "note",
            "",
        ),
    ],
)
def test_last_chunk_adds_only_what_did_not_stream(reply: str, streamed: str, rest: str) -> None:
    sent, last = _last_chunk_after(reply)
    assert (sent, last.content) == (streamed, rest)
    assert "stream_mismatch" not in last.response_metadata["agentfm"]


def test_last_chunk_reports_a_stream_that_the_parse_contradicts() -> None:
    # json.loads keeps the last duplicate key; the first one had already streamed.
    sent, last = _last_chunk_after('{"final_answer": "a", "final_answer": "b"}')
    assert sent == "a"
    assert last.content == ""
    meta = last.response_metadata["agentfm"]
    assert meta["stream_mismatch"] is True
    assert meta["final_answer"] == "b"
