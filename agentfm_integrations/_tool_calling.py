"""Prompted tool calling and structured output, shared by the LangChain and LlamaIndex classes.

The gateway carries one prompt string to a worker and drops ``tools``, ``tool_choice`` and
``response_format`` (protocol §5.5, §8.2). So tool calling over the mesh is *prompted*: the
tools' JSON schemas, the conversation (earlier tool calls and their results included) and a
strict reply contract are written into the prompt, and the worker's text answer is parsed
back. The contract asks for exactly one JSON object:

* ``{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}`` to call tools, or
* ``{"final_answer": "..."}`` to answer the user,

and for structured output, one JSON object matching a given JSON Schema.

Parsing is lenient about the wrapping (code fences, prose around the object, small syntax
slips fixed by ``json-repair``) but strict about the content: every call's arguments are
validated against its tool's schema, and whatever does not validate is reported as an
invalid call with the reason, never dropped and never passed off as plain text.

Everything here is pure (no I/O), so both frameworks and their sync and async paths share
one implementation. The machine-readable parts of the contract sit between tags
(``<tools>``, ``<tool_choice>``, ``<schema>``, ``<correction>``) that the embedded mesh's
``planner`` demo worker reads; an instruction-following LLM reads the prose around them.

Why this module is long: it is one concept, the reply contract, written and read. Its
renderer and its parser change together, so they stay side by side past 500 lines (the
streaming decoder of a final answer, a concept of its own, lives in `_final_answer`).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import json_repair
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from agentfm_integrations._final_answer import FinalAnswerStream, stream_remainder

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "Call",
    "Choice",
    "FinalAnswerStream",
    "InvalidCall",
    "OutputSchema",
    "Reply",
    "StructuredOutputError",
    "ToolSpec",
    "Turn",
    "advertises_prompted_tools",
    "correction_text",
    "extract_json",
    "new_call_id",
    "normalize_tool_choice",
    "openai_tool_spec",
    "parse_structured",
    "parse_tool_reply",
    "reask_turns",
    "render_turns",
    "stream_remainder",
    "structured_messages",
    "tool_messages",
    "validate_arguments",
]

ReplyFormat = Literal["json", "fenced", "embedded", "repaired", "text"]
"""How the reply's JSON was found: the whole reply, a code fence, inside prose, after
repair, or not at all (plain text)."""

CAPABILITY_WORDS = frozenset({"tool", "tools", "function", "instruct", "llm"})
"""Words of a worker's capability tag that advertise an instruction-following model."""

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


# --------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the prompt shows it: name, description and argument JSON Schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The tool as rendered into the prompt."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


@dataclass(frozen=True)
class Choice:
    """A normalised ``tool_choice``: ``auto``, ``required`` (any tool), ``none`` or a name."""

    mode: Literal["auto", "required", "none"] = "auto"
    name: str | None = None
    """Set when one tool must be called (``mode`` is then ``required``)."""

    def describe(self) -> str:
        """The choice as one token for the ``<tool_choice>`` tag."""
        return self.name if self.name is not None else self.mode


@dataclass(frozen=True)
class Call:
    """A tool call whose arguments validated against the tool's schema."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class InvalidCall:
    """A tool call the model attempted that cannot be run, with the reason."""

    id: str
    name: str | None
    arguments: str | None
    """The arguments as JSON text (or the raw text when they were not JSON)."""
    error: str


@dataclass
class Turn:
    """One message of a conversation, framework-neutral.

    ``role`` is ``system``, ``user``, ``assistant`` or ``tool``. An assistant turn may carry
    the tool calls it made; a tool turn answers one call (``tool_call_id``).
    """

    role: str
    text: str = ""
    tool_calls: list[Call] = field(default_factory=list)
    tool_call_id: str | None = None
    tool_name: str | None = None
    is_error: bool = False


@dataclass
class Reply:
    """A worker's answer under the tool contract, parsed and validated."""

    text: str
    """The final answer (or, when the reply was not the contract's JSON, the raw reply)."""
    calls: list[Call]
    invalid: list[InvalidCall]
    format: ReplyFormat
    raw: str
    violation: str | None = None
    """Set when the reply broke the contract (not JSON, or ``tool_choice`` ignored)."""

    def metadata(self) -> dict[str, Any]:
        """What the response metadata records about this prompted reply."""
        meta: dict[str, Any] = {"prompted": True, "mode": "tools", "reply_format": self.format}
        if self.violation:
            meta["violation"] = self.violation
        if self.invalid:
            meta["invalid_tool_calls"] = [
                {"id": c.id, "name": c.name, "error": c.error} for c in self.invalid
            ]
        return meta


class StructuredOutputError(ValueError):
    """A reply did not parse or validate against the requested schema."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


def new_call_id() -> str:
    """A fresh tool-call id (the worker never assigns one)."""
    return f"call_{uuid.uuid4().hex[:24]}"


def openai_tool_spec(tool: Mapping[str, Any]) -> ToolSpec:
    """A tool in OpenAI's ``{"type": "function", "function": {...}}`` form as a `ToolSpec`."""
    function = tool["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return ToolSpec(function["name"], function.get("description", ""), parameters)


# --------------------------------------------------------------------------------------
# capability


def advertises_prompted_tools(capability: str | None, engine: str | None) -> bool:
    """Whether a worker's advertised capability tag or engine names an instruction follower.

    Mesh workers run arbitrary programs; only those that say they wrap an LLM that follows
    instructions (capability words such as ``tool-calling``, ``llm``, ``instruct``, or an
    ``…instruct…`` engine) get prompted tool calling by default.
    """
    words = set(re.split(r"[^a-z0-9]+", (capability or "").lower()))
    if words & CAPABILITY_WORDS:
        return True
    return "instruct" in (engine or "").lower()


# --------------------------------------------------------------------------------------
# tool_choice


def normalize_tool_choice(choice: Any, tools: Sequence[ToolSpec]) -> Choice:
    """Map the frameworks' ``tool_choice`` spellings onto a `Choice`.

    Accepts None/``"auto"``, ``"any"``/``"required"``/True, ``"none"``/False, a tool name,
    and the OpenAI dict ``{"type": "function", "function": {"name": ...}}``.

    Raises:
        ValueError: the choice names a tool that is not bound, or has an unknown shape.
    """
    if choice is None or choice == "auto":
        return Choice("auto")
    if choice is True or choice in ("any", "required"):
        return Choice("required")
    if choice is False or choice == "none":
        return Choice("none")
    name: Any = None
    if isinstance(choice, str):
        name = choice
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
    if not isinstance(name, str):
        raise ValueError(f"unsupported tool_choice {choice!r}")
    if name not in {t.name for t in tools}:
        known = ", ".join(t.name for t in tools) or "none"
        raise ValueError(f"tool_choice names {name!r}, which is not a bound tool ({known})")
    return Choice("required", name)


# --------------------------------------------------------------------------------------
# rendering


def _call_json(call: Call) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments}


def render_turns(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """Render a conversation as the gateway's ``{role, content}`` messages.

    Earlier tool calls are shown in the contract's own JSON shape (which doubles as an
    example for the model), and each tool result as one JSON line naming its call.
    """
    wire: list[dict[str, str]] = []
    for turn in turns:
        if turn.role == "assistant" and turn.tool_calls:
            content = json.dumps(
                {"tool_calls": [_call_json(c) for c in turn.tool_calls]}, ensure_ascii=False
            )
            if turn.text.strip():
                content = f"{turn.text.strip()}\n{content}"
        elif turn.role == "tool":
            content = json.dumps(
                {
                    "tool_result": {
                        "call_id": turn.tool_call_id,
                        "name": turn.tool_name,
                        "status": "error" if turn.is_error else "success",
                        "content": turn.text,
                    }
                },
                ensure_ascii=False,
            )
        else:
            content = turn.text
        wire.append({"role": turn.role, "content": content})
    return wire


def _choice_rule(choice: Choice) -> str:
    if choice.name is not None:
        return f"You MUST call the tool {choice.name!r} now; do not give a final answer."
    if choice.mode == "required":
        return "You MUST call at least one tool now; do not give a final answer."
    if choice.mode == "none":
        return "Do not call any tool now; give the final answer."
    return "Call tools when they help; otherwise give the final answer."


def tool_messages(
    turns: Sequence[Turn],
    tools: Sequence[ToolSpec],
    choice: Choice,
    *,
    parallel: bool = True,
) -> list[dict[str, str]]:
    """The wire messages of a tool-calling request: the contract, then the conversation."""
    tools_json = json.dumps([t.as_json() for t in tools], ensure_ascii=False)
    many = (
        "You may call several tools at once when they do not depend on each other."
        if parallel
        else "Call one tool at a time."
    )
    contract = (
        "You are an assistant that can call tools. The tools, with the JSON Schema of each "
        f"tool's arguments:\n<tools>{tools_json}</tools>\n"
        f"<tool_choice>{choice.describe()}</tool_choice> {_choice_rule(choice)}\n"
        "Reply with exactly one JSON object and nothing else, in one of two forms:\n"
        '{"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}\n'
        '{"final_answer": "<your answer to the user>"}\n'
        f"{many} Tool results come back as tool messages "
        '({"tool_result": {...}}); use them to decide the next step. Arguments must match '
        "the tool's schema exactly (names and types)."
    )
    return [{"role": "system", "content": contract}, *render_turns(turns)]


def structured_messages(turns: Sequence[Turn], schema: OutputSchema) -> list[dict[str, str]]:
    """The wire messages of a structured-output request: the schema contract, then the turns."""
    schema_json = json.dumps(schema.json_schema, ensure_ascii=False)
    contract = (
        f"Answer with exactly one JSON object that is a valid {schema.name!r} as described "
        f"by this JSON Schema, and nothing else (no prose, no code fence):\n"
        f"<schema>{schema_json}</schema>"
    )
    return [{"role": "system", "content": contract}, *render_turns(turns)]


def correction_text(error: str) -> str:
    """The user turn of a re-ask: what was wrong, and what to send instead."""
    return (
        f"<correction>Your previous reply was not valid: {error}</correction>\n"
        "Reply again with only the corrected JSON object."
    )


def reask_turns(turns: Sequence[Turn], bad_reply: str, error: str) -> list[Turn]:
    """The conversation of a re-ask: the failed reply, then the validation error to fix."""
    return [*turns, Turn("assistant", bad_reply), Turn("user", correction_text(error))]


# --------------------------------------------------------------------------------------
# parsing


def extract_json(text: str) -> tuple[Any, ReplyFormat] | None:
    """Find the JSON value a reply holds, leniently.

    Tried in order: the whole reply, a fenced code block, the first object embedded in
    prose, then ``json-repair`` on the text from the first brace. Returns the value and
    how it was found, or None when the reply holds no JSON object or array.
    """
    stripped = text.strip()
    if not stripped:
        return None
    try:
        return json.loads(stripped), "json"
    except ValueError:
        pass
    for block in _FENCE.findall(stripped):
        try:
            return json.loads(block.strip()), "fenced"
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"[{\[]", stripped)]
    for start in starts:
        try:
            value, _ = decoder.raw_decode(stripped, start)
        except ValueError:
            continue
        if isinstance(value, (dict, list)):
            return value, "embedded"
    if starts:
        repaired = json_repair.repair_json(stripped[starts[0] :], return_objects=True)
        if isinstance(repaired, (dict, list)) and repaired:
            return repaired, "repaired"
    return None


def validate_arguments(arguments: Any, schema: Mapping[str, Any]) -> str | None:
    """Check arguments against a JSON Schema; return the most relevant error, or None."""
    if not isinstance(arguments, dict):
        return f"arguments must be a JSON object, got {type(arguments).__name__}"
    error = best_match(Draft202012Validator(schema).iter_errors(arguments))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _raw_calls(value: Any) -> list[Any] | None:
    """The list of attempted calls in a parsed reply, or None when it holds no calls."""
    if isinstance(value, list):
        return value if all(isinstance(v, dict) and "name" in v for v in value) else None
    if not isinstance(value, dict):
        return None
    for key in ("tool_calls", "calls", "tools"):
        if isinstance(value.get(key), list):
            return list(value[key])
    if isinstance(value.get("tool_call"), dict):
        return [value["tool_call"]]
    if isinstance(value.get("name"), str) and any(
        k in value for k in ("arguments", "args", "parameters")
    ):
        return [value]
    return None


def _final_text(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("final_answer", "answer", "response"):
            if key in value:
                answer = value[key]
                return answer if isinstance(answer, str) else json.dumps(answer)
    return None


def _check_call(
    raw: Any, tools: Mapping[str, ToolSpec], choice: Choice, make_id: Callable[[], str]
) -> Call | InvalidCall:
    call_id = make_id()
    if not isinstance(raw, dict):
        return InvalidCall(call_id, None, json.dumps(raw), "a tool call must be a JSON object")
    name = raw.get("name")
    args: Any = next(
        (raw[k] for k in ("arguments", "args", "parameters") if k in raw),
        {},
    )
    if isinstance(args, str):
        # Some models send OpenAI-style arguments as a JSON string.
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return InvalidCall(call_id, name, args, "arguments are not valid JSON")
    args_text = json.dumps(args, ensure_ascii=False)
    if not isinstance(name, str) or name not in tools:
        known = ", ".join(tools) or "none"
        return InvalidCall(
            call_id,
            name if isinstance(name, str) else None,
            args_text,
            f"unknown tool {name!r}; the tools are: {known}",
        )
    if choice.name is not None and name != choice.name:
        return InvalidCall(
            call_id, name, args_text, f"tool_choice requires {choice.name!r}, not {name!r}"
        )
    error = validate_arguments(args, tools[name].parameters)
    if error is not None:
        return InvalidCall(call_id, name, args_text, f"arguments do not match the schema: {error}")
    return Call(call_id, name, args)


def parse_tool_reply(
    text: str,
    tools: Sequence[ToolSpec],
    choice: Choice,
    *,
    make_id: Callable[[], str] = new_call_id,
) -> Reply:
    """Parse a reply under the tool contract into valid calls, invalid calls and text.

    A reply with no JSON at all is kept as text and flagged (``format="text"``); when
    ``tool_choice`` required a call, a missing call is a ``violation`` too.
    """
    by_name = {t.name: t for t in tools}
    found = extract_json(text)
    if found is None:
        problem = "the reply is not the contract's JSON object"
        if choice.mode == "required":
            problem += f"; tool_choice {choice.describe()!r} required a tool call"
        return Reply(text.strip(), [], [], "text", text, problem)
    value, how = found
    raw_calls = _raw_calls(value)
    if raw_calls is not None and choice.mode != "none":
        calls: list[Call] = []
        invalid: list[InvalidCall] = []
        for raw in raw_calls:
            checked = _check_call(raw, by_name, choice, make_id)
            if isinstance(checked, Call):
                calls.append(checked)
            else:
                invalid.append(checked)
        note = _final_text(value) or ""
        return Reply(note, calls, invalid, how, text)
    final = _final_text(value)
    violation: str | None = None
    if final is None:
        final = text.strip()
        violation = "the reply's JSON has neither tool_calls nor final_answer"
    if raw_calls is not None:
        violation = "tool_choice 'none' forbade tool calls; the calls were not run"
    elif choice.mode == "required":
        violation = f"tool_choice {choice.describe()!r} required a tool call; the model answered"
    return Reply(final, [], [], how, text, violation)


# --------------------------------------------------------------------------------------
# structured output


@dataclass(frozen=True)
class OutputSchema:
    """A structured-output target: its JSON Schema and how to build the result.

    ``build`` turns the parsed JSON into the caller's type (a pydantic model, a TypedDict
    checked by pydantic, or the dict itself) and raises on invalid data; when it is None,
    the dict is checked against ``json_schema`` here.
    """

    name: str
    json_schema: Mapping[str, Any]
    build: Callable[[dict[str, Any]], Any] | None = None

    def validate(self, value: Any) -> Any:
        """Return the result built from ``value``, or raise `ValueError` saying what is wrong."""
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        if self.build is not None:
            return self.build(value)
        error = validate_arguments(value, self.json_schema)
        if error is not None:
            raise ValueError(error)
        return value


def _unwrap(value: Any, schema: OutputSchema) -> Any:
    """Accept ``{"<name>": {...}}`` or ``{"final_answer": {...}}`` around the object."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), *_ = value.items()
        props = schema.json_schema.get("properties", {})
        if key not in props and key in (schema.name, "final_answer", "answer", "output"):
            return inner
    return value


def parse_structured(text: str, schema: OutputSchema) -> Any:
    """Parse and validate a structured reply.

    Raises:
        StructuredOutputError: no JSON object was found, or it does not validate; the
            message is what a re-ask tells the model.
    """
    found = extract_json(text)
    if found is None:
        raise StructuredOutputError("the reply holds no JSON object", text)
    value = _unwrap(found[0], schema)
    try:
        return schema.validate(value)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise StructuredOutputError(_one_line(str(exc)), text) from exc


def _one_line(message: str, limit: int = 600) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
