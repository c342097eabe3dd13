"""Models of the gateway's OpenAI-compatible routes (``/v1/models``, ``/v1/*completions``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentfm.exceptions import InvalidRequestError

__all__ = [
    "ChatChoice",
    "ChatChoiceDelta",
    "ChatChunkChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatMessage",
    "CompletionChoice",
    "ModelEntry",
    "ModelsList",
    "TextCompletion",
    "TextCompletionChunk",
    "TextCompletionChunkChoice",
    "Usage",
    "coerce_messages",
    "flatten_messages",
]

_ALLOW = ConfigDict(extra="allow")


class ChatMessage(BaseModel):
    """One chat message (extra keys such as ``name`` or ``tool_calls`` are kept)."""

    model_config = _ALLOW

    role: str
    content: str | None = None


class Usage(BaseModel):
    """Token counts (the gateway always reports zeros)."""

    model_config = _ALLOW

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatChoice(BaseModel):
    """One choice of a non-streamed chat completion."""

    model_config = _ALLOW

    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None


class ChatCompletion(BaseModel):
    """A non-streamed ``/v1/chat/completions`` answer."""

    model_config = _ALLOW

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)


class CompletionChoice(BaseModel):
    """One choice of a non-streamed text completion."""

    model_config = _ALLOW

    index: int = 0
    text: str
    finish_reason: str | None = None


class TextCompletion(BaseModel):
    """A non-streamed ``/v1/completions`` answer."""

    model_config = _ALLOW

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)


class ChatChoiceDelta(BaseModel):
    """The increment carried by one streamed chat chunk."""

    model_config = _ALLOW

    role: str | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    """One choice of a streamed chat chunk."""

    model_config = _ALLOW

    index: int = 0
    delta: ChatChoiceDelta = Field(default_factory=ChatChoiceDelta)
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` event of a streamed chat completion."""

    model_config = _ALLOW

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice] = Field(default_factory=list)
    agentfm_peer_id: str | None = None
    """The worker serving the stream."""
    agentfm_task_id: str | None = None
    """The gateway's task id (the artifact zip's name)."""


class TextCompletionChunkChoice(BaseModel):
    """One choice of a streamed text completion chunk."""

    model_config = _ALLOW

    index: int = 0
    text: str = ""
    finish_reason: str | None = None


class TextCompletionChunk(BaseModel):
    """One ``data:`` event of a streamed text completion."""

    model_config = _ALLOW

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextCompletionChunkChoice] = Field(default_factory=list)


class ModelEntry(BaseModel):
    """One worker as listed by ``GET /v1/models`` (``id`` is its peer id)."""

    model_config = _ALLOW

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "agentfm"
    description: str | None = None
    agentfm_name: str | None = None
    agentfm_engine: str | None = None
    agentfm_status: str | None = None
    agentfm_hardware: str | None = None
    agentfm_current_tasks: int | None = None
    agentfm_max_tasks: int | None = None
    agentfm_cpu_usage_pct: float | None = None
    agentfm_ram_free_gb: float | None = None
    agentfm_has_gpu: bool | None = None
    agentfm_gpu_used_gb: float | None = None
    agentfm_gpu_total_gb: float | None = None
    agentfm_gpu_usage_pct: float | None = None
    agentfm_image_ref: str | None = None
    agentfm_image_digest: str | None = None
    agentfm_capability: str | None = None
    agentfm_honesty_score: float | None = None
    agentfm_is_equivocator: bool | None = None
    agentfm_dispatch_allowed: bool | None = None
    agentfm_dispatch_refuse_reason: str | None = None
    agentfm_online: bool | None = None
    agentfm_last_seen: str | None = None


class ModelsList(BaseModel):
    """The ``GET /v1/models`` answer."""

    object: Literal["list"] = "list"
    data: list[ModelEntry] = Field(default_factory=list)


def coerce_messages(messages: Iterable[ChatMessage | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Turn messages into the JSON dicts sent on the wire.

    Raises:
        InvalidRequestError: A message is neither a `ChatMessage` nor a mapping.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, ChatMessage):
            out.append(message.model_dump(exclude_none=True))
        elif isinstance(message, Mapping):
            out.append(dict(message))
        else:
            raise InvalidRequestError(
                f"messages must be ChatMessage or dict, got {type(message).__name__}",
                code="invalid_messages",
            )
    return out


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return str(content)


def flatten_messages(messages: Iterable[ChatMessage | Mapping[str, Any]]) -> str:
    """Return the single prompt string the gateway builds from chat messages.

    Each message with non-empty content becomes ``"<role>: <content>\\n\\n"`` (an empty role
    counts as ``user``), followed by a final ``"assistant:"``.

    Example:
        ```python
        flatten_messages([{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}])
        # 'system: S\\n\\nuser: Hi\\n\\nassistant:'
        ```
    """
    pieces: list[str] = []
    for message in coerce_messages(messages):
        content = _text_of(message.get("content"))
        if not content:
            continue
        role = message.get("role") or "user"
        pieces.append(f"{role}: {content}\n\n")
    pieces.append("assistant:")
    return "".join(pieces)
