"""Scatter: one pure scheduler, driven by an asyncio driver (the sync client runs it in a thread).

`ScatterScheduler` decides which prompt goes to which peer and when, and turns attempt
outcomes into results. It does no I/O, never sleeps and never reads a clock: the driver
passes ``now`` in. The drivers only ask it for the next dispatch, run the attempt, and report
the outcome back, so the sync and async clients cannot behave differently.

How peers are chosen:

* **Capacity**: a peer's free slots are its advertised ``max_tasks - current_tasks`` minus
  this scatter's own attempts on it; a peer with none gets no work while others have room.
  A capacity rejection (``❌ ERROR:``) marks the peer as fuller than advertised and is never
  a success.
* **Speed and health**: among peers with room, the one expected to finish first wins (its
  observed latency, penalised by its failure rate). Near the end of a batch of known size,
  a slow peer gets an item only if faster peers could not finish it sooner.
* **Failure memory**: a failed prompt moves to a peer it has not tried yet. A peer that
  keeps failing is benched (circuit breaker), then gets one probe once the bench expires.
* **Overload**: a 503 ``mesh_overloaded`` / ``async_capacity_exhausted`` (or a 503 with
  ``Retry-After``) pauses dispatching for that long (exponential backoff without the
  header) and requeues the item. Each overload answer uses one of the item's
  ``max_retries + 1`` attempts (it shows in ``ScatterResult.attempts``), so the waits are
  bounded by the caller's budget; a ``Retry-After`` longer than 120 s is final at once.
* **Final answers**: a 429 ``rate_limited`` (failed auth attempts from this address) and a
  401 end the whole batch: every item not yet sent fails with that error, since each new
  request would fail the same way and spend the address's allowance.
* **Dead gateway**: when the gateway itself cannot be reached (connection errors, not
  timeouts), dispatching pauses with a growing backoff (0.1 s doubling to 2 s), so a
  restart is survived. If it stays unreachable for 5 s with no answer in between, the items
  not yet sent fail at once with that error instead of each going through its retries.
* **Missing worker**: a 404 ``Worker not found`` removes the peer from this batch; the item
  moves to another peer, and is final when no other peer is left.
* **Hedging** (opt-in): once no new work is waiting, an attempt running far past the
  batch's typical latency is duplicated on another peer with room; the first success wins
  and the other attempt is cancelled. An item still yields exactly one result.

Memory holds only live work: inputs are pulled lazily, and the scheduler never holds more
than ``max_concurrency`` unfinished items (in flight or waiting for a retry).
"""

from __future__ import annotations

from agentfm._scatter._drivers import run_async, run_sync
from agentfm._scatter._policy import (
    ends_batch,
    is_gateway_unreachable,
    is_overload,
    is_redispatchable,
)
from agentfm._scatter._scheduler import ScatterScheduler
from agentfm._scatter._types import AttemptOutcome, Dispatch

__all__ = [
    "AttemptOutcome",
    "Dispatch",
    "ScatterScheduler",
    "ends_batch",
    "is_gateway_unreachable",
    "is_overload",
    "is_redispatchable",
    "run_async",
    "run_sync",
]
