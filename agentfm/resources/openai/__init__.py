"""``client.openai``: the gateway's OpenAI-compatible routes, shaped like the OpenAI SDK."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentfm.resources.openai._common import GLOBAL_WARNER, RoutingWarner
from agentfm.resources.openai.chat import AsyncChat, Chat
from agentfm.resources.openai.completions import AsyncCompletions, Completions
from agentfm.resources.openai.models import AsyncModels, Models

if TYPE_CHECKING:
    from agentfm._api_client import AsyncAPIClient, SyncAPIClient

__all__ = ["AsyncOpenAINamespace", "OpenAINamespace"]


class OpenAINamespace:
    """Sync ``client.openai``: ``models``, ``chat.completions``, ``completions``.

    Example:
        ```python
        for entry in client.openai.models.list().data:
            print(entry.id, entry.agentfm_name)
        ```
    """

    def __init__(self, client: SyncAPIClient) -> None:
        self.models = Models(client)
        self.chat = Chat(client)
        self.completions = Completions(client)
        self._warner: RoutingWarner = GLOBAL_WARNER


class AsyncOpenAINamespace:
    """Async ``client.openai`` (same shape, awaited)."""

    def __init__(self, client: AsyncAPIClient) -> None:
        self.models = AsyncModels(client)
        self.chat = AsyncChat(client)
        self.completions = AsyncCompletions(client)
        self._warner: RoutingWarner = GLOBAL_WARNER
