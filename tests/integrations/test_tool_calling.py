"""The prompted tool-calling core: rendering, lenient parsing, validation, tool_choice, schemas.

Also the `planner` demo agent, which reads the same contract back from a prompt.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING

import pytest

import agentfm
from agentfm.mesh._config import load_toml
from agentfm.mesh.demo_agents import plan_reply
from agentfm_integrations import _tool_calling as tc

if TYPE_CHECKING:
    from pathlib import Path

ADD = tc.ToolSpec(
    "add",
    "Add two integers.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
SHOUT = tc.ToolSpec(
    "shout",
    "Upper-case a text.",
    {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
)
TOOLS = [ADD, SHOUT]
AUTO = tc.Choice()


def _ids() -> object:
    counter = iter(range(100))
    return lambda: f"id{next(counter)}"


# ------------------------------------------------------------------ extract_json


@pytest.mark.parametrize(
    ("text", "how"),
    [
        ('{"a": 1}', "json"),
        ('Here you go:\n```json\n{"a": 1}\n```\nanything else?', "fenced"),
        ('Sure, {"a": 1} is my answer. Bye.', "embedded"),
        ('{"a": 1,}', "repaired"),  # trailing comma
        ("{'a': 1}", "repaired"),  # single quotes
    ],
)
def test_extract_json_is_lenient_about_wrapping(text: str, how: str) -> None:
    assert tc.extract_json(text) == ({"a": 1}, how)


@pytest.mark.parametrize("text", ["", "   ", "no json here at all", "answer: 42"])
def test_extract_json_none_without_an_object(text: str) -> None:
    assert tc.extract_json(text) is None


# ------------------------------------------------------------------ parse_tool_reply


def test_valid_calls_get_ids_and_are_validated() -> None:
    reply = tc.parse_tool_reply(
        '{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}},'
        ' {"name": "shout", "arguments": "{\\"text\\": \\"hi\\"}"}]}',
        TOOLS,
        AUTO,
        make_id=_ids(),  # type: ignore[arg-type]
    )
    assert reply.calls == [
        tc.Call("id0", "add", {"a": 1, "b": 2}),
        tc.Call("id1", "shout", {"text": "hi"}),  # OpenAI-style string arguments
    ]
    assert reply.invalid == []
    assert reply.violation is None


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ({"name": "add", "arguments": {"a": "1", "b": 2}}, "a: '1' is not of type 'integer'"),
        ({"name": "add", "arguments": {"a": 1}}, "'b' is a required property"),
        ({"name": "web", "arguments": {}}, "unknown tool 'web'; the tools are: add, shout"),
        ({"name": "add", "arguments": "{not json"}, "arguments are not valid JSON"),
        ({"name": "add", "arguments": [1, 2]}, "arguments must be a JSON object"),
    ],
)
def test_invalid_calls_keep_the_reason(call: dict[str, object], error: str) -> None:
    reply = tc.parse_tool_reply(json.dumps({"tool_calls": [call]}), TOOLS, AUTO)
    assert reply.calls == []
    [bad] = reply.invalid
    assert error in bad.error
    assert bad.id.startswith("call_")


def test_single_call_shapes_are_accepted() -> None:
    for text in (
        '{"name": "shout", "arguments": {"text": "x"}}',
        '{"tool_call": {"name": "shout", "args": {"text": "x"}}}',
        '[{"name": "shout", "parameters": {"text": "x"}}]',
    ):
        [call] = tc.parse_tool_reply(text, TOOLS, AUTO).calls
        assert (call.name, call.arguments) == ("shout", {"text": "x"})


def test_final_answer_and_plain_text() -> None:
    final = tc.parse_tool_reply('{"final_answer": "It is 3."}', TOOLS, AUTO)
    assert (final.text, final.calls, final.violation) == ("It is 3.", [], None)
    plain = tc.parse_tool_reply("It is 3.", TOOLS, AUTO)
    assert plain.text == "It is 3."
    assert plain.format == "text"
    assert plain.violation == "the reply is not the contract's JSON object"


def test_tool_choice_is_checked_on_the_reply() -> None:
    required = tc.normalize_tool_choice("any", TOOLS)
    answered = tc.parse_tool_reply('{"final_answer": "no"}', TOOLS, required)
    assert answered.violation is not None
    assert "required a tool call" in answered.violation
    named = tc.normalize_tool_choice("shout", TOOLS)
    wrong = tc.parse_tool_reply('{"name": "add", "arguments": {"a": 1, "b": 2}}', TOOLS, named)
    assert wrong.calls == []
    assert "tool_choice requires 'shout'" in wrong.invalid[0].error
    none = tc.normalize_tool_choice("none", TOOLS)
    refused = tc.parse_tool_reply('{"name": "add", "arguments": {"a": 1, "b": 2}}', TOOLS, none)
    assert refused.calls == []
    assert refused.violation is not None


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, tc.Choice("auto")),
        ("auto", tc.Choice("auto")),
        ("any", tc.Choice("required")),
        ("required", tc.Choice("required")),
        (True, tc.Choice("required")),
        ("none", tc.Choice("none")),
        ("add", tc.Choice("required", "add")),
        ({"type": "function", "function": {"name": "add"}}, tc.Choice("required", "add")),
    ],
)
def test_normalize_tool_choice(choice: object, expected: tc.Choice) -> None:
    assert tc.normalize_tool_choice(choice, TOOLS) == expected


def test_normalize_tool_choice_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="not a bound tool"):
        tc.normalize_tool_choice("mul", TOOLS)
    with pytest.raises(ValueError, match="unsupported"):
        tc.normalize_tool_choice(3, TOOLS)


# ------------------------------------------------------------------ rendering


def test_rendering_carries_tools_choice_calls_and_results() -> None:
    turns = [
        tc.Turn("user", "add 1 and 2"),
        tc.Turn("assistant", "", [tc.Call("c1", "add", {"a": 1, "b": 2})]),
        tc.Turn("tool", "3", tool_call_id="c1", tool_name="add", is_error=False),
    ]
    wire = tc.tool_messages(turns, TOOLS, tc.normalize_tool_choice("add", TOOLS))
    system = wire[0]["content"]
    assert json.loads(system.split("<tools>")[1].split("</tools>")[0])[0]["name"] == "add"
    assert "<tool_choice>add</tool_choice> You MUST call the tool 'add'" in system
    assert json.loads(wire[2]["content"])["tool_calls"][0]["id"] == "c1"
    assert json.loads(wire[3]["content"]) == {
        "tool_result": {"call_id": "c1", "name": "add", "status": "success", "content": "3"}
    }


# ------------------------------------------------------------------ structured


SCHEMA = tc.OutputSchema(
    "Person",
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    },
)


def test_parse_structured_validates_and_unwraps() -> None:
    assert tc.parse_structured('```json\n{"name": "A", "age": 3}\n```', SCHEMA) == {
        "name": "A",
        "age": 3,
    }
    assert tc.parse_structured('{"Person": {"name": "A", "age": 3}}', SCHEMA)["age"] == 3
    with pytest.raises(tc.StructuredOutputError, match="is not of type 'integer'") as info:
        tc.parse_structured('{"name": "A", "age": "old"}', SCHEMA)
    assert info.value.raw == '{"name": "A", "age": "old"}'
    with pytest.raises(tc.StructuredOutputError, match="no JSON object"):
        tc.parse_structured("I'd rather not.", SCHEMA)


def test_reask_turns_append_the_error() -> None:
    turns = tc.reask_turns([tc.Turn("user", "q")], "bad", "age: wrong")
    assert [t.role for t in turns] == ["user", "assistant", "user"]
    assert "<correction>Your previous reply was not valid: age: wrong</correction>" in (
        turns[-1].text
    )


@pytest.mark.parametrize(
    ("capability", "engine", "expected"),
    [
        ("tool-calling", "planner", True),
        ("llm", "llama3.2", True),
        ("echo", "echo", False),
        (None, "qwen2.5-7b-instruct", True),
        ("writer", "markdown", False),
    ],
)
def test_capability_advertisement(capability: str | None, engine: str, expected: bool) -> None:
    assert tc.advertises_prompted_tools(capability, engine) is expected


# ------------------------------------------------------------------ the planner agent


def _ask(turns: list[tc.Turn], choice: object = None, tools: list[tc.ToolSpec] = TOOLS) -> str:
    wire = tc.tool_messages(turns, tools, tc.normalize_tool_choice(choice, tools))
    return plan_reply(agentfm.flatten_messages(wire))


def test_planner_calls_then_chains_then_answers() -> None:
    first = tc.parse_tool_reply(_ask([tc.Turn("user", "add(2, 5) then shout it")]), TOOLS, AUTO)
    assert [(c.name, c.arguments) for c in first.calls] == [("add", {"a": 2, "b": 5})]
    turns = [
        tc.Turn("user", "add(2, 5) then shout it"),
        tc.Turn("assistant", "", first.calls),
        tc.Turn("tool", "7", tool_call_id=first.calls[0].id, tool_name="add"),
    ]
    second = tc.parse_tool_reply(_ask(turns), TOOLS, AUTO)
    assert [(c.name, c.arguments) for c in second.calls] == [("shout", {"text": "7"})]
    turns += [
        tc.Turn("assistant", "", second.calls),
        tc.Turn("tool", "7!", tool_call_id=second.calls[0].id, tool_name="shout"),
    ]
    final = tc.parse_tool_reply(_ask(turns), TOOLS, AUTO)
    assert final.calls == []
    assert final.text == "add returned 7; shout returned 7!"


def test_planner_honours_tool_choice() -> None:
    reply = tc.parse_tool_reply(_ask([tc.Turn("user", "hello")], "shout"), TOOLS, AUTO)
    assert [c.name for c in reply.calls] == ["shout"]
    reply = tc.parse_tool_reply(_ask([tc.Turn("user", "hello")]), TOOLS, AUTO)
    assert reply.calls == []  # auto and nothing mentioned: it answers


def test_planner_structured_and_its_mistakes() -> None:
    wire = tc.structured_messages([tc.Turn("user", "a person named 'Ada', 36")], SCHEMA)
    assert tc.parse_structured(plan_reply(agentfm.flatten_messages(wire)), SCHEMA) == {
        "name": "Ada",
        "age": 36,
    }
    slip = tc.structured_messages([tc.Turn("user", "Ada, 36 [planner:wrong-type]")], SCHEMA)
    bad = plan_reply(agentfm.flatten_messages(slip))
    with pytest.raises(tc.StructuredOutputError):
        tc.parse_structured(bad, SCHEMA)
    fixed = tc.structured_messages(
        tc.reask_turns([tc.Turn("user", "Ada, 36 [planner:wrong-type]")], bad, "wrong"), SCHEMA
    )
    assert tc.parse_structured(plan_reply(agentfm.flatten_messages(fixed)), SCHEMA)["age"] == 36


def test_planner_without_contract_says_so() -> None:
    assert plan_reply("user: hi\n\nassistant:").startswith("planner: no reply contract")


def test_toml_capability_and_openai_default(tmp_path: Path) -> None:
    path = tmp_path / "mesh.toml"
    path.write_text(
        '[[workers]]\nname = "ollama"\nengine = "llama3.2"\n'
        'openai = { base_url = "http://127.0.0.1:9/v1", model = "llama3.2" }\n'
        '[[workers]]\nname = "brain"\nengine = "rules"\ndemo = "planner"\n'
        'capability = "tool-calling"\n'
        '[[workers]]\nname = "echo"\nengine = "echo"\ndemo = "echo"\n'
    )
    workers, _ = load_toml(path)
    assert [w.capability for w in workers] == ["llm", "tool-calling", None]
    assert [tc.advertises_prompted_tools(w.capability, w.engine) for w in workers] == [
        True,
        True,
        False,
    ]


# ------------------------------------------------------------------ streaming the final answer

STREAMED = [
    '{"final_answer": "plain words"}\n',
    '  \n{ "final_answer" :\t"esc \\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 ok"}',
    '{"final_answer": "lone \\ud800 then \\ud800\\u0041 and \\udc00 end", "tool_calls": []}',
    '{"final_answer": "\\u00e9\\ud83d\\ude00"}',
]
HELD = [
    '{"tool_calls": [{"name": "magic", "arguments": {"input": 5}}]}',
    'Sure! ```json\n{"final_answer": "x"}\n```',
    '{"final_answer": 42}',
    '{"answer": "x"}',
    '{"final\\u005fanswer": "x"}',
    "plain text, no JSON",
]


def _feed_split(reply: str, cuts: tuple[int, ...]) -> tuple[str, list[str]]:
    stream = tc.FinalAnswerStream()
    bounds = [0, *cuts, len(reply)]
    pieces = [stream.feed(reply[a:b]) for a, b in itertools.pairwise(bounds)]
    return stream.finish(), pieces


@pytest.mark.parametrize("reply", STREAMED)
def test_final_answer_streams_identically_at_every_split(reply: str) -> None:
    expected = json.loads(reply)["final_answer"]
    n = len(reply)
    for i in range(n + 1):
        for j in range(i, n + 1):
            whole, pieces = _feed_split(reply, (i, j))
            assert "".join(pieces) == whole == expected, (i, j)
    # One character at a time, and every prefix released is a prefix of the answer.
    stream, seen = tc.FinalAnswerStream(), ""
    for char in reply:
        seen += stream.feed(char)
        assert expected.startswith(seen)
    assert seen == expected
    # The answer is released before the reply ends (that is the point of streaming).
    closing = reply.rindex('"', 0, reply.rindex("}"))
    assert tc.FinalAnswerStream().feed(reply[:closing]) == expected


@pytest.mark.parametrize("reply", HELD)
def test_other_replies_release_nothing_at_any_split(reply: str) -> None:
    for i in range(len(reply) + 1):
        whole, pieces = _feed_split(reply, (i,))
        assert whole == "", i
        assert not any(pieces), i


@pytest.mark.parametrize(
    ("reply", "released"),
    [
        ('{"final_answer": "ab\\x cd"}', "ab"),  # invalid escape
        ('{"final_answer": "ab\ncd"}', "ab"),  # raw control character
        ('{"final_answer": "ab\\u00zz"}', "ab"),  # bad hex
        ('{"final_answer": "ab\\u00', "ab"),  # truncated escape
    ],
)
def test_malformed_string_stops_where_it_breaks(reply: str, released: str) -> None:
    for i in range(len(reply) + 1):
        whole, _ = _feed_split(reply, (i,))
        assert whole == released, i


def test_stream_remainder_joins_or_reports() -> None:
    assert tc.stream_remainder("", "abc") == "abc"
    assert tc.stream_remainder("ab", "abc") == "c"
    assert tc.stream_remainder("abc", "abc") == ""
    assert tc.stream_remainder("a", "b") is None  # e.g. a duplicated final_answer key


def test_planner_writes_its_reply_in_pieces_with_the_same_bytes() -> None:
    import subprocess
    import sys

    from agentfm.mesh import demo_agents

    tools = [{"name": "magic", "parameters": {"type": "object"}}]
    prompt = (
        f"system: <tools>{json.dumps(tools)}</tools><tool_choice>none</tool_choice>\n"
        f"user: {'word ' * 300}"
    )
    out = subprocess.run(
        [sys.executable, demo_agents.__file__, "planner", prompt],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == plan_reply(prompt)
    assert len(out) > 2 * demo_agents._PLANNER_PIECE
