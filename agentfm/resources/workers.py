"""``client.workers``: discover workers from the gateway's telemetry."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import agentfm._routing as _routing
from agentfm._base_client import RequestSpec
from agentfm._flow import Sleep
from agentfm._resource import AsyncAPIResource, SyncAPIResource, validate
from agentfm._trust import passes_trust, require_min_honesty
from agentfm._validation import require_peer_id
from agentfm.exceptions import InvalidRequestError, WorkerNotFoundError
from agentfm.models import WorkerProfile, WorkersResponse

if TYPE_CHECKING:
    import builtins
    from collections.abc import Sequence

    from agentfm._flow import Flow

__all__ = ["AsyncWorkers", "Workers", "filter_workers", "match_workers"]


def _list_spec(include_offline: bool) -> RequestSpec:
    params = {"include_offline": "true"} if include_offline else None
    return RequestSpec("GET", "/api/workers", params=params, idempotent=True)


def parse_workers(body: Any) -> list[WorkerProfile]:
    """Validate an ``/api/workers`` body."""
    return validate(WorkersResponse, body, "unexpected /api/workers body").agents


def filter_workers(
    workers: Sequence[WorkerProfile],
    *,
    model: str | None = None,
    agent_name: str | None = None,
    author: str | None = None,
    available_only: bool = False,
) -> list[WorkerProfile]:
    """Keep the workers matching every given filter (names compared case-insensitively)."""
    kept: list[WorkerProfile] = []
    for worker in workers:
        if model is not None and worker.engine.casefold() != model.casefold():
            continue
        if agent_name is not None and worker.name.casefold() != agent_name.casefold():
            continue
        if author is not None and worker.author.casefold() != author.casefold():
            continue
        if available_only and not worker.is_available:
            continue
        kept.append(worker)
    return kept


def match_workers(
    workers: Sequence[WorkerProfile],
    model: str,
    *,
    available_only: bool = False,
    min_honesty: float | None = None,
) -> list[WorkerProfile]:
    """The gateway's three-tier model matcher, in `agentfm._routing.order_peers` order.

    Tier 1: ``peer_id`` equals ``model`` exactly; tier 2: agent name equals it
    case-insensitively; tier 3: engine equals it case-insensitively. Each worker lands in
    its first matching tier and only the first non-empty tier is used. Peers failing the
    trust rules (`agentfm._trust`) are never candidates.
    """
    wanted = model.strip()
    folded = wanted.casefold()
    tiers: list[list[WorkerProfile]] = [[], [], []]
    for worker in workers:
        if not worker.online or not passes_trust(worker, min_honesty):
            continue
        if worker.peer_id == wanted:
            tiers[0].append(worker)
        elif worker.name.casefold() == folded:
            tiers[1].append(worker)
        elif worker.engine.casefold() == folded:
            tiers[2].append(worker)
    chosen = next((tier for tier in tiers if tier), [])
    if available_only:
        chosen = [w for w in chosen if w.max_tasks <= 0 or w.current_tasks < w.max_tasks]
    if not chosen:
        return []
    # One ordering rule for every caller (looked up at call time: tests pin the order).
    by_id: dict[str, WorkerProfile] = {w.peer_id: w for w in chosen}
    return [by_id[p] for p in _routing.order_peers(chosen, _routing.IN_FLIGHT.snapshot())]


def _check_poll(wait_for_workers: int, poll_timeout: float, poll_interval: float) -> None:
    if wait_for_workers < 0:
        raise InvalidRequestError("wait_for_workers must be >= 0", code="invalid_wait_for_workers")
    if poll_timeout < 0 or poll_interval <= 0:
        raise InvalidRequestError(
            "poll_timeout must be >= 0 and poll_interval > 0", code="invalid_poll"
        )


def list_flow(
    model: str | None,
    agent_name: str | None,
    author: str | None,
    available_only: bool,
    wait_for_workers: int,
    poll_timeout: float,
    poll_interval: float,
    include_offline: bool,
) -> Flow[Any, list[WorkerProfile]]:
    """List workers, polling until ``wait_for_workers`` match or ``poll_timeout`` passes."""
    _check_poll(wait_for_workers, poll_timeout, poll_interval)
    deadline = time.monotonic() + poll_timeout
    while True:
        kept = filter_workers(
            parse_workers((yield _list_spec(include_offline))),
            model=model,
            agent_name=agent_name,
            author=author,
            available_only=available_only,
        )
        if len(kept) >= wait_for_workers or time.monotonic() >= deadline:
            return kept
        yield Sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))


def get_flow(peer_id: str) -> Flow[Any, WorkerProfile]:
    """One worker by peer id (`WorkerNotFoundError` if the telemetry lacks it)."""
    peer_id = require_peer_id(peer_id)
    for worker in parse_workers((yield _list_spec(False))):
        if worker.peer_id == peer_id:
            return worker
    raise WorkerNotFoundError(f"peer {peer_id!r} not in current telemetry", code="worker_not_found")


def match_flow(
    model: str, available_only: bool, min_honesty: float | None
) -> Flow[Any, list[WorkerProfile]]:
    """The workers the gateway would route ``model`` to (see `match_workers`)."""
    min_honesty = require_min_honesty(min_honesty)
    workers = parse_workers((yield _list_spec(False)))
    return match_workers(workers, model, available_only=available_only, min_honesty=min_honesty)


class Workers(SyncAPIResource):
    """Sync ``client.workers``.

    Example:
        ```python
        echo = client.workers.match("echo", available_only=True)[0]
        ```
    """

    def list(
        self,
        *,
        model: str | None = None,
        agent_name: str | None = None,
        author: str | None = None,
        available_only: bool = False,
        wait_for_workers: int = 0,
        poll_timeout: float = 15.0,
        poll_interval: float = 1.0,
        include_offline: bool = False,
    ) -> builtins.list[WorkerProfile]:
        """List workers, optionally waiting until at least ``wait_for_workers`` match.

        Returns whatever matched at the ``poll_timeout`` deadline (possibly fewer).
        """
        return self._client.drive(
            list_flow(
                model,
                agent_name,
                author,
                available_only,
                wait_for_workers,
                poll_timeout,
                poll_interval,
                include_offline,
            )
        )

    def get(self, peer_id: str) -> WorkerProfile:
        """Return one worker by peer id.

        Raises:
            WorkerNotFoundError: The peer is not in the gateway's telemetry.
        """
        return self._client.drive(get_flow(peer_id))

    def match(
        self, model: str, *, available_only: bool = False, min_honesty: float | None = None
    ) -> builtins.list[WorkerProfile]:
        """Workers the gateway would route ``model`` to (peer id, agent name or engine).

        Peers with ``dispatch_allowed`` false are skipped, and with ``min_honesty`` so are
        peers whose ``honesty_score`` is below it.
        """
        return self._client.drive(match_flow(model, available_only, min_honesty))

    # Transitional alias (issue #16): `agentfm.resources.tasks` still calls it.
    def _fetch(self, include_offline: bool = False) -> builtins.list[WorkerProfile]:
        return self.list(include_offline=include_offline)


class AsyncWorkers(AsyncAPIResource):
    """Async ``client.workers`` (same methods as `Workers`, awaited)."""

    async def list(
        self,
        *,
        model: str | None = None,
        agent_name: str | None = None,
        author: str | None = None,
        available_only: bool = False,
        wait_for_workers: int = 0,
        poll_timeout: float = 15.0,
        poll_interval: float = 1.0,
        include_offline: bool = False,
    ) -> builtins.list[WorkerProfile]:
        """List workers, optionally waiting until at least ``wait_for_workers`` match."""
        return await self._client.drive(
            list_flow(
                model,
                agent_name,
                author,
                available_only,
                wait_for_workers,
                poll_timeout,
                poll_interval,
                include_offline,
            )
        )

    async def get(self, peer_id: str) -> WorkerProfile:
        """Return one worker by peer id (`WorkerNotFoundError` if absent)."""
        return await self._client.drive(get_flow(peer_id))

    async def match(
        self, model: str, *, available_only: bool = False, min_honesty: float | None = None
    ) -> builtins.list[WorkerProfile]:
        """Workers the gateway would route ``model`` to, under the trust rules of `match`."""
        return await self._client.drive(match_flow(model, available_only, min_honesty))

    # Transitional alias (issue #16): `agentfm.resources.tasks` still calls it.
    async def _fetch(self, include_offline: bool = False) -> builtins.list[WorkerProfile]:
        return await self.list(include_offline=include_offline)
