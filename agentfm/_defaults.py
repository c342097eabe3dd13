"""Defaults the SDK and the framework integrations share, each decided here once."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentfm.models import WorkerProfile

__all__ = ["FALLBACK_MAX_CONCURRENCY", "scatter_concurrency"]

FALLBACK_MAX_CONCURRENCY = 8
"""Tasks in flight of a scatter that has no worker telemetry to size itself by."""


def scatter_concurrency(peer_ids: Sequence[str], workers: Sequence[WorkerProfile] | None) -> int:
    """A scatter's default tasks in flight: the task slots its candidate peers advertise.

    Filling every advertised slot is what keeps a large batch efficient (a fixed 8 over a
    64-slot mesh leaves most of it idle); the scheduler still keeps each peer within its
    own slots. A peer without a limit, or absent from the telemetry, counts as one slot;
    without telemetry at all (``workers`` None) the batch runs `FALLBACK_MAX_CONCURRENCY`.
    """
    if workers is None:
        return FALLBACK_MAX_CONCURRENCY
    slots: dict[str, int] = {w.peer_id: max(1, w.max_tasks) for w in workers}
    return max(1, sum(slots.get(peer, 1) for peer in set(peer_ids)))
