"""LangChain side of prompted tool calling and structured output (`_tool_calling` does the work).

`bind_tools` and `with_structured_output` only bind keyword arguments; `Prompted` reads them
back per call, renders the prompt, and turns the worker's reply into an `AIMessage` with
real ``tool_calls``/``invalid_tool_calls``. `PromptedStructuredOutput` parses, validates
and re-asks, with batches re-asking only the items that failed (each round one scatter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.exceptions import OutputParserException
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.runnables import Runnable
from langchain_core.runnables.config import get_config_list
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import BaseModel

import agentfm
from agentfm_integrations import _tool_calling as tc
from agentfm_integrations.langchain._convert import message_role, message_text

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from langchain_core.language_models import BaseChatModel, LanguageModelInput
    from langchain_core.messages import InvalidToolCall, ToolCall
    from langchain_core.runnables import RunnableConfig

SCHEMA_KEY = "agentfm_output_schema"
"""Bound kwarg carrying a structured-output JSON Schema to the model call."""

_CALL_BLOCKS = frozenset({"tool_use", "tool_call", "function_call"})


# --------------------------------------------------------------------------------------
# messages → turns


def _content_text(message: BaseMessage) -> str:
    """A message's text; tool-call blocks of an AI message are carried by ``tool_calls``."""
    if isinstance(message, AIMessage) and isinstance(message.content, list):
        kept = [
            b
            for b in message.content
            if not (isinstance(b, dict) and b.get("type") in _CALL_BLOCKS)
        ]
        message = message.model_copy(update={"content": kept})
    if isinstance(message, ToolMessage) and isinstance(message.content, list):
        parts = []
        for block in message.content:
            if isinstance(block, str):
                parts.append(block)
            elif block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                parts.append(json.dumps(block, ensure_ascii=False, default=str))
        return "".join(parts)
    return message_text(message)


def to_turns(messages: Sequence[BaseMessage]) -> list[tc.Turn]:
    """Convert LangChain messages to framework-neutral turns, tool calls and results kept."""
    names: dict[str, str] = {}
    turns: list[tc.Turn] = []
    for message in messages:
        text = _content_text(message)
        if isinstance(message, AIMessage) and message.tool_calls:
            calls = [
                tc.Call(c.get("id") or tc.new_call_id(), c["name"], dict(c["args"]))
                for c in message.tool_calls
            ]
            names.update((c.id, c.name) for c in calls)
            turns.append(tc.Turn("assistant", text, calls))
        elif isinstance(message, ToolMessage):
            turns.append(
                tc.Turn(
                    "tool",
                    text,
                    tool_call_id=message.tool_call_id,
                    tool_name=message.name or names.get(message.tool_call_id),
                    is_error=message.status == "error",
                )
            )
        else:
            turns.append(tc.Turn(message_role(message), text))
    return turns


# --------------------------------------------------------------------------------------
# tools and the request of one call


def tool_spec(tool: Any) -> tc.ToolSpec:
    """A LangChain tool (BaseTool, function, pydantic class or dict) as a `ToolSpec`."""
    return tc.openai_tool_spec(convert_to_openai_tool(tool))


@dataclass(frozen=True)
class Prompted:
    """What one call asks for beyond plain text: tools, or a structured answer."""

    tools: list[tc.ToolSpec]
    choice: tc.Choice
    parallel: bool
    schema: tc.OutputSchema | None

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Prompted | None:
        """Read the request bound by `bind_tools`/`with_structured_output`, if any."""
        raw_schema = kwargs.get(SCHEMA_KEY)
        raw_tools = kwargs.get("tools") or []
        if raw_schema is None and not raw_tools:
            return None
        tools = [tool_spec(t) for t in raw_tools]
        choice = tc.normalize_tool_choice(kwargs.get("tool_choice"), tools)
        schema = (
            tc.OutputSchema(str(raw_schema.get("title") or "output"), raw_schema)
            if isinstance(raw_schema, dict)
            else None
        )
        parallel = kwargs.get("parallel_tool_calls") is not False
        return cls(tools, choice, parallel, schema)

    def prompt(self, messages: Sequence[BaseMessage]) -> str:
        """The one prompt string the worker gets: contract, then the conversation."""
        turns = to_turns(messages)
        if self.schema is not None:
            wire = tc.structured_messages(turns, self.schema)
        else:
            wire = tc.tool_messages(turns, self.tools, self.choice, parallel=self.parallel)
        return agentfm.flatten_messages(wire)

    def parse(self, text: str) -> tuple[str, list[ToolCall], list[InvalidToolCall], dict[str, Any]]:
        """Split a reply into content, tool calls, invalid calls and metadata."""
        if self.schema is not None:
            # Validation (and re-asking) belongs to `PromptedStructuredOutput`.
            return text, [], [], {"prompted": True, "mode": "structured"}
        reply = tc.parse_tool_reply(text, self.tools, self.choice)
        calls = [tool_call(name=c.name, args=c.arguments, id=c.id) for c in reply.calls]
        invalid = [
            invalid_tool_call(name=c.name, args=c.arguments, id=c.id, error=c.error)
            for c in reply.invalid
        ]
        if reply.violation and self.choice.mode == "required" and not reply.calls:
            invalid.append(
                invalid_tool_call(name=None, args=None, id=tc.new_call_id(), error=reply.violation)
            )
        return reply.text, calls, invalid, reply.metadata()


def tool_chunk(
    content: str,
    calls: Sequence[ToolCall],
    invalid: Sequence[InvalidToolCall],
    **fields: Any,
) -> AIMessageChunk:
    """The one streamed chunk of a prompted reply: the text and every tool call, whole.

    Only valid calls become ``tool_call_chunks``: core re-parses chunks when they are
    added together, and an invalid call whose arguments are well-formed JSON would come
    back as a valid one. The invalid calls stay on this chunk and in its metadata.
    """
    chunks = [
        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
        for i, c in enumerate(calls)
    ]
    chunk = AIMessageChunk(content=content, tool_call_chunks=chunks, **fields)
    chunk.invalid_tool_calls = list(invalid)
    return chunk


# --------------------------------------------------------------------------------------
# structured output


def output_schema(schema: Any) -> tuple[tc.OutputSchema, dict[str, Any]]:
    """The `OutputSchema` of a pydantic class, TypedDict, JSON Schema dict or None (JSON mode).

    Returns it with the JSON Schema LangChain reports (``ls_structured_output_format``).
    """
    if schema is None:
        plain = {"type": "object"}
        return tc.OutputSchema("json_object", plain), plain
    reported = convert_to_json_schema(schema)
    name = str(reported.get("title") or getattr(schema, "__name__", "output"))
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return tc.OutputSchema(name, reported, schema.model_validate), reported
    if isinstance(schema, type) and hasattr(schema, "parse_obj"):  # pydantic.v1 model
        return tc.OutputSchema(name, reported, schema.parse_obj), reported
    # A TypedDict or a JSON Schema: checked against the schema LangChain derives (for a
    # TypedDict, ``Annotated[T, default, "doc"]`` makes a key optional, which pydantic's
    # TypedDict validation would not), and returned as the dict.
    return tc.OutputSchema(name, reported), reported


class PromptedStructuredOutput(Runnable["LanguageModelInput", Any]):
    """``with_structured_output`` of a prompted model: parse, validate, re-ask up to a bound.

    Each re-ask is a new task whose conversation adds the failed reply and the validation
    error. Once ``max_reasks`` re-asks have failed, LangChain's `OutputParserException` is
    raised (or, with ``include_raw``, returned under ``parsing_error``).
    """

    def __init__(
        self,
        model: BaseChatModel,
        bound: Runnable[LanguageModelInput, BaseMessage],
        schema: tc.OutputSchema,
        *,
        include_raw: bool,
        max_reasks: int,
    ) -> None:
        self.model = model
        self.bound = bound
        self.schema = schema
        self.include_raw = include_raw
        self.max_reasks = max(0, max_reasks)

    # -- one round ---------------------------------------------------------------------

    def _messages(self, value: LanguageModelInput) -> list[BaseMessage]:
        return self.model._convert_input(value).to_messages()

    def _judge(self, raw: BaseMessage) -> tuple[Any, OutputParserException | None]:
        text = raw.text if isinstance(raw.text, str) else str(raw.content)
        try:
            return tc.parse_structured(text, self.schema), None
        except tc.StructuredOutputError as exc:
            return None, OutputParserException(str(exc), llm_output=exc.raw)

    @staticmethod
    def _repair(
        messages: list[BaseMessage], raw: BaseMessage, error: Exception
    ) -> list[BaseMessage]:
        return [
            *messages,
            AIMessage(content=raw.text),
            HumanMessage(tc.correction_text(str(error))),
        ]

    def _final(self, raw: BaseMessage, parsed: Any, error: OutputParserException | None) -> Any:
        if self.include_raw:
            return {"raw": raw, "parsed": parsed, "parsing_error": error}
        if error is not None:
            raise error
        return parsed

    def _exhausted(self, error: OutputParserException) -> OutputParserException:
        attempts = self.max_reasks + 1
        return OutputParserException(
            f"no valid {self.schema.name!r} after {attempts} attempt(s): {error}",
            llm_output=error.llm_output,
        )

    # -- invoke ------------------------------------------------------------------------

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Any:
        """Ask, validate, and re-ask with the error until valid or the bound is hit."""
        return self.batch([input], config, **kwargs)[0]

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> Any:
        """Async twin of `invoke`."""
        return (await self.abatch([input], config, **kwargs))[0]

    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        """Yield the validated object once (a partial object would not validate)."""
        yield self.invoke(input, config, **kwargs)

    async def astream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Async twin of `stream`."""
        yield await self.ainvoke(input, config, **kwargs)

    # -- batch: each round is one scatter of the items still failing --------------------

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Answer every input; re-ask rounds only resend the items that failed."""
        state = _Rounds(self, inputs, config)
        while state.pending:
            replies = self.bound.batch(
                state.round_inputs(), state.round_configs(), return_exceptions=True, **kwargs
            )
            state.take(replies)
        return state.results(return_exceptions)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """Async twin of `batch`."""
        state = _Rounds(self, inputs, config)
        while state.pending:
            replies = await self.bound.abatch(
                state.round_inputs(), state.round_configs(), return_exceptions=True, **kwargs
            )
            state.take(replies)
        return state.results(return_exceptions)


class _Rounds:
    """Bookkeeping of a structured batch: which items still need an answer, and their turns."""

    def __init__(
        self,
        owner: PromptedStructuredOutput,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None,
    ) -> None:
        self.owner = owner
        self.configs = get_config_list(config, len(inputs))
        self.messages = [owner._messages(i) for i in inputs]
        self.outcomes: list[Any] = [None] * len(inputs)
        self.pending = list(range(len(inputs)))
        self.round = 0

    def round_inputs(self) -> list[LanguageModelInput]:
        return [self.messages[i] for i in self.pending]

    def round_configs(self) -> list[RunnableConfig]:
        return [self.configs[i] for i in self.pending]

    def take(self, replies: Sequence[BaseMessage | Exception]) -> None:
        still: list[int] = []
        last_round = self.round >= self.owner.max_reasks
        for index, reply in zip(self.pending, replies, strict=True):
            if isinstance(reply, Exception):
                self.outcomes[index] = reply  # the call itself failed: not re-asked
                continue
            parsed, error = self.owner._judge(reply)
            if error is None:
                self.outcomes[index] = self.owner._final(reply, parsed, None)
            elif last_round:
                exhausted = self.owner._exhausted(error)
                try:
                    self.outcomes[index] = self.owner._final(reply, None, exhausted)
                except OutputParserException as exc:
                    self.outcomes[index] = exc
            else:
                self.messages[index] = self.owner._repair(self.messages[index], reply, error)
                still.append(index)
        self.pending = still
        self.round += 1

    def results(self, return_exceptions: bool) -> list[Any]:
        if not return_exceptions:
            for outcome in self.outcomes:
                if isinstance(outcome, Exception):
                    raise outcome
        return self.outcomes
