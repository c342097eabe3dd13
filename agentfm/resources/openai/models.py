"""``client.openai.models``: ``GET /v1/models``."""

from __future__ import annotations

from agentfm._base_client import RequestSpec
from agentfm._resource import AsyncAPIResource, SyncAPIResource
from agentfm.resources.openai._common import parse_model
from agentfm.types.openai import ModelsList

__all__ = ["AsyncModels", "Models"]

_SPEC = RequestSpec("GET", "/v1/models", idempotent=True)


class Models(SyncAPIResource):
    """Sync ``client.openai.models``."""

    def list(self) -> ModelsList:
        """List the workers as OpenAI models (``id`` is the peer id)."""
        return parse_model(ModelsList, self._client.request_json(_SPEC), "/v1/models body")


class AsyncModels(AsyncAPIResource):
    """Async ``client.openai.models``."""

    async def list(self) -> ModelsList:
        """List the workers as OpenAI models (``id`` is the peer id)."""
        return parse_model(ModelsList, await self._client.request_json(_SPEC), "/v1/models body")
