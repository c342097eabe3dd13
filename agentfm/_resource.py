"""The base of every resource: it holds the client, and its methods stay thin.

A resource keeps its logic in pure functions that take values (specs, parsed bodies,
settings), not clients, and multi-step calls in flows (`agentfm._flow`) that the client
drives. The client is typed through the API client classes of `agentfm._api_client`, which
import no resource, so there is no import circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentfm.exceptions import GatewayProtocolError

if TYPE_CHECKING:
    from agentfm._api_client import AsyncAPIClient, SyncAPIClient

__all__ = ["AsyncAPIResource", "SyncAPIResource", "validate"]

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], body: Any, what: str, *, raw: bool = False) -> M:
    """``body`` as ``model`` (``raw``: a JSON string), or `GatewayProtocolError` naming ``what``.

    Every resource reads the gateway's bodies through this, so a body of the wrong shape is
    the same error everywhere: ``"<what>: N validation error(s)"``, ``invalid_response``.
    """
    try:
        return model.model_validate_json(body) if raw else model.model_validate(body)
    except ValidationError as exc:
        raise GatewayProtocolError(
            f"{what}: {exc.error_count()} validation error(s)", code="invalid_response"
        ) from None


class SyncAPIResource:
    """A namespace of the sync client (``client.workers``, ``client.peers``…)."""

    def __init__(self, client: SyncAPIClient) -> None:
        self._client = client


class AsyncAPIResource:
    """A namespace of the async client."""

    def __init__(self, client: AsyncAPIClient) -> None:
        self._client = client
