"""``client.openai.models``: ``GET /v1/models``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentfm._base_client import RequestSpec
from agentfm.resources.openai._common import parse_model
from agentfm.types.openai import ModelsList

if TYPE_CHECKING:
    from agentfm._client import AgentFMClient, AsyncAgentFMClient

__all__ = ["AsyncModels", "Models"]

_SPEC = RequestSpec("GET", "/v1/models", idempotent=True)


class Models:
    """Sync ``client.openai.models``."""

    def __init__(self, client: AgentFMClient) -> None:
        self._client = client

    def list(self) -> ModelsList:
        """List the workers as OpenAI models (``id`` is the peer id)."""
        return parse_model(ModelsList, self._client._request_json(_SPEC), "/v1/models body")


class AsyncModels:
    """Async ``client.openai.models``."""

    def __init__(self, client: AsyncAgentFMClient) -> None:
        self._client = client

    async def list(self) -> ModelsList:
        """List the workers as OpenAI models (``id`` is the peer id)."""
        return parse_model(ModelsList, await self._client._request_json(_SPEC), "/v1/models body")
