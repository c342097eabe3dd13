"""LlamaIndex side of prompted tool calling and structured output (`_tool_calling` does the work).

`AgentFM._prepare_chat_with_tools` puts a `ToolRequest` into the chat kwargs; the chat
methods render it into the prompt and turn the reply into a `ChatResponse` whose message
carries one `ToolCallBlock` per valid call (`get_tool_calls_from_response` reads them back
as `ToolSelection`s). Calls that do not validate are kept in
``additional_kwargs["invalid_tool_calls"]`` with the reason, never run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)

import agentfm
from agentfm_integrations import _tool_calling as tc
from agentfm_integrations._usage import estimated_counts

if TYPE_CHECKING:
    from collections.abc import Sequence

    from llama_index.core.tools.types import BaseTool

REQUEST_KEY = "agentfm_prompted"
"""Chat kwarg carrying a `ToolRequest` or an `OutputSchema`."""


def _text(message: ChatMessage) -> str:
    parts: list[str] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append(block.text)
        elif not isinstance(block, ToolCallBlock):
            raise ValueError(
                f"AgentFM agents take text only; got a {type(block).__name__} "
                f"in a {message.role.value} message"
            )
    return "".join(parts)


def _calls(message: ChatMessage) -> list[tc.Call]:
    calls: list[tc.Call] = []
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            args = block.tool_kwargs if isinstance(block.tool_kwargs, dict) else {}
            calls.append(tc.Call(block.tool_call_id or tc.new_call_id(), block.tool_name, args))
    return calls


def to_turns(messages: Sequence[ChatMessage]) -> list[tc.Turn]:
    """Convert LlamaIndex messages to framework-neutral turns, tool calls and results kept."""
    names: dict[str, str] = {}
    turns: list[tc.Turn] = []
    for message in messages:
        role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
        calls = _calls(message) if role == "assistant" else []
        names.update((c.id, c.name) for c in calls)
        if role == "tool":
            call_id = message.additional_kwargs.get("tool_call_id")
            name = message.additional_kwargs.get("name") or names.get(str(call_id))
            turns.append(tc.Turn("tool", _text(message), tool_call_id=call_id, tool_name=name))
        else:
            turns.append(tc.Turn(role, _text(message), calls))
    return turns


def tool_spec(tool: BaseTool) -> tc.ToolSpec:
    """A LlamaIndex tool as a `ToolSpec` (its OpenAI function schema)."""
    return tc.openai_tool_spec(tool.metadata.to_openai_tool())


@dataclass(frozen=True)
class ToolRequest:
    """The tools and tool choice of one chat-with-tools call."""

    tools: list[tc.ToolSpec]
    choice: tc.Choice
    parallel: bool


def prompt_for(messages: Sequence[ChatMessage], request: ToolRequest | tc.OutputSchema) -> str:
    """The one prompt the worker gets: the reply contract, then the conversation."""
    turns = to_turns(messages)
    if isinstance(request, tc.OutputSchema):
        wire = tc.structured_messages(turns, request)
    else:
        wire = tc.tool_messages(turns, request.tools, request.choice, parallel=request.parallel)
    return agentfm.flatten_messages(wire)


def usage_kwargs(prompt: str, text: str) -> dict[str, Any]:
    """OpenAI-style usage keys for ``additional_kwargs``, marked as an estimate."""
    prompt_tokens, completion_tokens, total = estimated_counts(prompt, text)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": total,
        "usage_estimated": True,
    }


def prompted_response(
    response: ChatResponse, request: ToolRequest | tc.OutputSchema
) -> ChatResponse:
    """Rebuild a finished response from a prompted reply: text, tool-call blocks, metadata."""
    raw_text = response.message.content or ""
    info: dict[str, Any]
    blocks: list[Any]
    if isinstance(request, tc.OutputSchema):
        info = {"prompted": True, "mode": "structured"}
        blocks = [TextBlock(text=raw_text)]
        invalid: list[dict[str, Any]] = []
    else:
        reply = tc.parse_tool_reply(raw_text, request.tools, request.choice)
        info = reply.metadata()
        blocks = [TextBlock(text=reply.text)] if reply.text else []
        blocks += [
            ToolCallBlock(tool_call_id=c.id, tool_name=c.name, tool_kwargs=c.arguments)
            for c in reply.calls
        ]
        invalid = [
            {"id": c.id, "name": c.name, "arguments": c.arguments, "error": c.error}
            for c in reply.invalid
        ]
    extra = dict(response.additional_kwargs)
    extra["agentfm"] = {**extra.get("agentfm", {}), **info}
    if invalid:
        extra["invalid_tool_calls"] = invalid
    return ChatResponse(
        message=ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks),
        delta=None,
        additional_kwargs=extra,
        raw={**(response.raw or {}), "reply": raw_text},
    )
