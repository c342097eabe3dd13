"""The base of every resource: it holds the client, and its methods stay thin.

A resource keeps its logic in pure functions that take values (specs, parsed bodies,
settings), not clients, and multi-step calls in flows (`agentfm._flow`) that the client
drives. The client is typed through the API client classes of `agentfm._api_client`, which
import no resource, so there is no import circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentfm._api_client import AsyncAPIClient, SyncAPIClient

__all__ = ["AsyncAPIResource", "SyncAPIResource"]


class SyncAPIResource:
    """A namespace of the sync client (``client.workers``, ``client.peers``…)."""

    def __init__(self, client: SyncAPIClient) -> None:
        self._client = client


class AsyncAPIResource:
    """A namespace of the async client."""

    def __init__(self, client: AsyncAPIClient) -> None:
        self._client = client
