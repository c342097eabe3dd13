"""0.3.0 module path of the OpenAI-compatible models (re-exports; see `agentfm._compat`)."""

from __future__ import annotations

from agentfm.types.openai import (
    ChatChoice,
    ChatChoiceDelta,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    CompletionChoice,
    ModelEntry,
    ModelsList,
    TextCompletion,
    TextCompletionChunk,
    TextCompletionChunkChoice,
    Usage,
    coerce_messages,
)

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
]
