"""0.3.0 module path of the OpenAI namespace and its models (see `agentfm._compat`)."""

from __future__ import annotations

from agentfm.exceptions import AgentFMRoutingWarning
from agentfm.resources.openai import AsyncOpenAINamespace, OpenAINamespace
from agentfm.types.openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    ModelEntry,
    ModelsList,
    TextCompletion,
    TextCompletionChunk,
    Usage,
)

__all__ = [
    "AgentFMRoutingWarning",
    "AsyncOpenAINamespace",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatMessage",
    "ModelEntry",
    "ModelsList",
    "OpenAINamespace",
    "TextCompletion",
    "TextCompletionChunk",
    "Usage",
]
