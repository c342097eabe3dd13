"""Short sync/async drivers over the SDK: routing, failover and scatter.

The decisions (which peers, when to fail over) are made by small pure helpers; the twins
below only perform the calls, so the sync and async behaviour stays the same.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import agentfm

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence
    from pathlib import Path

    from pydantic import SecretStr

REJECTION_PREFIX = "❌ ERROR:"
"""How a worker's refusal line starts (protocol §5.4)."""

# Errors that say something about the request or the caller, not about the peer: trying
# another peer would fail the same way.
_NO_FAILOVER: tuple[type[agentfm.AgentFMError], ...] = (
    agentfm.AuthenticationError,
    agentfm.InvalidRequestError,
    agentfm.RateLimitError,
    agentfm.ModelNotFoundError,
)


def client_kwargs(
    *,
    gateway_url: str | None,
    api_key: SecretStr | None,
    timeout: float | None,
    retries: int,
    artifacts_dir: str | Path | None,
) -> dict[str, Any]:
    """Build the SDK client arguments from integration settings."""
    return {
        "gateway_url": gateway_url,
        "api_key": api_key.get_secret_value() if api_key is not None else None,
        "timeout": timeout,
        "retries": retries,
        "artifacts_dir": artifacts_dir,
    }


def can_fail_over(exc: BaseException, *, emitted: bool) -> bool:
    """Say whether an attempt's failure may be retried on another peer.

    Once text has reached the caller a retry would repeat it, so only failures before
    the first emitted byte fail over.
    """
    return (
        not emitted and isinstance(exc, agentfm.AgentFMError) and not isinstance(exc, _NO_FAILOVER)
    )


def order_peers(
    workers: Sequence[agentfm.WorkerProfile], rng: random.Random | None = None
) -> list[str]:
    """Order matched workers least-loaded first, breaking ties at random.

    Telemetry is up to two seconds old, so many concurrent calls would all pick the same
    "idle" worker if ties kept the gateway's order; a random tie-break spreads them.
    """
    shuffled = list(workers)
    (rng or random).shuffle(shuffled)
    shuffled.sort(key=lambda w: w.load_ratio)
    return list(dict.fromkeys(w.peer_id for w in shuffled))


class PeerPlan:
    """Decide which peer a single task tries next, and after how long.

    A failed attempt (the peer broke or could not be reached) moves to a peer not tried
    yet and uses up one of ``max_retries``. A refusal (``❌ ERROR:``, the worker was full)
    means the task never ran: the peer goes to the back of the line, and once every peer
    has refused in a round the next round starts after a short backoff. Rounds are
    bounded by ``max_retries + 1`` too.
    """

    def __init__(self, peers: Sequence[str], max_retries: int) -> None:
        self._line = list(dict.fromkeys(peers))
        self._budget = max(0, max_retries) + 1
        self._failures = 0
        self._round = 0
        self._refused: list[str] = []
        self.tried: list[str] = []

    def next(self) -> tuple[str, float] | None:
        """Return ``(peer, delay_seconds)`` for the next attempt, or None to give up."""
        delay = 0.0
        if not self._line and self._refused:
            self._round += 1
            if self._round >= self._budget:
                return None
            self._line, self._refused = self._refused, []
            delay = min(1.0, 0.05 * 2**self._round)
        if not self._line or self._failures >= self._budget:
            return None
        peer = self._line.pop(0)
        self.tried.append(peer)
        return peer, delay

    def failed(self, peer: str, exc: agentfm.AgentFMError) -> None:
        """Record that the attempt on ``peer`` failed with ``exc`` (a fail-over-able error)."""
        if isinstance(exc, agentfm.WorkerRejectedError):
            self._refused.append(peer)
        else:
            self._failures += 1


def _matched(
    model: str, workers: Sequence[agentfm.WorkerProfile]
) -> Sequence[agentfm.WorkerProfile]:
    if not workers:
        msg = f"no live worker matches model {model!r} (peer id, agent name or engine)"
        raise agentfm.ModelNotFoundError(msg, code="model_not_found", status=404)
    return workers


def require_peers(model: str, workers: Sequence[agentfm.WorkerProfile]) -> list[str]:
    """Return the matched peer ids, or raise the gateway's own ``model_not_found`` error."""
    return [w.peer_id for w in _matched(model, workers)]


def mesh_capacity(workers: Sequence[agentfm.WorkerProfile]) -> int:
    """Total task slots advertised by ``workers`` (a worker without a limit counts as one)."""
    return max(1, sum(max(1, w.max_tasks) for w in workers))


class RejectionGate:
    """Hold back a leading ``❌ ERROR:`` line until the stream shows it is not a rejection.

    A worker that refuses a task (at capacity, overloaded) answers with that single line
    and no marker; keeping it from the caller lets the stream fail over to another peer
    as if nothing had been emitted.
    """

    def __init__(self) -> None:
        self._held = ""
        self.emitted = False

    def feed(self, text: str) -> str:
        """Return the text that may reach the caller now."""
        if self.emitted:
            return text
        self._held += text
        probe = self._held.lstrip()
        if REJECTION_PREFIX.startswith(probe) or (
            probe.startswith(REJECTION_PREFIX) and probe.count("\n") <= 1
        ):
            return ""
        return self.flush()

    def flush(self) -> str:
        """Release what is held (the stream ended cleanly)."""
        out, self._held = self._held, ""
        if out:
            self.emitted = True
        return out


@dataclass
class StreamEnd:
    """What is known once a streamed task has finished."""

    peer_id: str
    task_id: str | None
    files_incoming: bool
    peers_tried: list[str] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        """How many peers were tried, the serving one included."""
        return len(self.peers_tried)


# --------------------------------------------------------------------------------------
# one task with failover


def run_task(
    client: agentfm.AgentFMClient,
    *,
    model: str,
    prompt: str,
    max_retries: int,
    timeout: float | None,
) -> tuple[agentfm.TaskResult, list[str]]:
    """Run one task on the least-loaded matching peer, failing over per `PeerPlan`."""
    plan = PeerPlan(order_peers(_matched(model, client.workers.match(model))), max_retries)
    while (step := plan.next()) is not None:
        peer, delay = step
        time.sleep(delay)
        try:
            return client.tasks.run(peer_id=peer, prompt=prompt, timeout=timeout), plan.tried
        except agentfm.AgentFMError as exc:
            if not can_fail_over(exc, emitted=False):
                raise
            plan.failed(peer, exc)
            last = exc
    raise last


async def arun_task(
    client: agentfm.AsyncAgentFMClient,
    *,
    model: str,
    prompt: str,
    max_retries: int,
    timeout: float | None,
) -> tuple[agentfm.TaskResult, list[str]]:
    """Async twin of `run_task`."""
    plan = PeerPlan(order_peers(_matched(model, await client.workers.match(model))), max_retries)
    while (step := plan.next()) is not None:
        peer, delay = step
        await asyncio.sleep(delay)
        try:
            result = await client.tasks.run(peer_id=peer, prompt=prompt, timeout=timeout)
        except agentfm.AgentFMError as exc:
            if not can_fail_over(exc, emitted=False):
                raise
            plan.failed(peer, exc)
            last = exc
        else:
            return result, plan.tried
    raise last


def stream_task(
    client: agentfm.AgentFMClient,
    *,
    model: str,
    prompt: str,
    max_retries: int,
    timeout: float | None,
    stop_when: Callable[[], bool] = lambda: False,
) -> Iterator[str | StreamEnd]:
    """Stream one task's text, failing over while nothing has been emitted yet.

    Yields text pieces, then one `StreamEnd`. ``stop_when`` is checked after each piece so a
    caller that has seen a stop sequence can end the task early (closing the stream makes
    the gateway cancel the agent).
    """
    plan = PeerPlan(order_peers(_matched(model, client.workers.match(model))), max_retries)
    while (step := plan.next()) is not None:
        peer, delay = step
        time.sleep(delay)
        gate = RejectionGate()
        try:
            with client.tasks.stream(peer_id=peer, prompt=prompt, timeout=timeout) as stream:
                for chunk in stream:
                    if chunk.kind == "text" and (text := gate.feed(chunk.text)):
                        yield text
                        if stop_when():
                            break
                end = StreamEnd(peer, stream.task_id, stream.files_incoming, plan.tried)
        except agentfm.AgentFMError as exc:
            if not can_fail_over(exc, emitted=gate.emitted):
                raise
            plan.failed(peer, exc)
            last = exc
            continue
        if text := gate.flush():
            yield text
        yield end
        return
    raise last


async def astream_task(
    client: agentfm.AsyncAgentFMClient,
    *,
    model: str,
    prompt: str,
    max_retries: int,
    timeout: float | None,
    stop_when: Callable[[], bool] = lambda: False,
) -> AsyncIterator[str | StreamEnd]:
    """Async twin of `stream_task`."""
    plan = PeerPlan(order_peers(_matched(model, await client.workers.match(model))), max_retries)
    while (step := plan.next()) is not None:
        peer, delay = step
        await asyncio.sleep(delay)
        gate = RejectionGate()
        try:
            async with client.tasks.stream(peer_id=peer, prompt=prompt, timeout=timeout) as stream:
                async for chunk in stream:
                    if chunk.kind == "text" and (text := gate.feed(chunk.text)):
                        yield text
                        if stop_when():
                            break
                end = StreamEnd(peer, stream.task_id, stream.files_incoming, plan.tried)
        except agentfm.AgentFMError as exc:
            if not can_fail_over(exc, emitted=gate.emitted):
                raise
            plan.failed(peer, exc)
            last = exc
            continue
        if text := gate.flush():
            yield text
        yield end
        return
    raise last


# --------------------------------------------------------------------------------------
# scatter with failover of started tasks


class Round(NamedTuple):
    """One scatter call of `FailoverRounds`: which items, on which peers, how many retries."""

    indexes: list[int]
    prompts: list[str]
    peers: list[str]
    max_retries: int


class FailoverRounds:
    """Plan scatter rounds so an item whose task broke after it started still fails over.

    The SDK's scatter never re-sends a task that already started on a worker (it may have
    done work). A LangChain batch item is a model call, which is safe to repeat exactly like
    a single ``invoke`` failing over, so items that failed that way go into a follow-up
    scatter that avoids the peers that failed, within the ``max_retries`` budget. The first
    round is the whole batch; later rounds only ever hold failed items.
    """

    def __init__(self, prompts: Sequence[str], peers: Sequence[str], max_retries: int) -> None:
        self._prompts = list(prompts)
        self._peers = list(dict.fromkeys(peers))
        self._budget = max(0, max_retries) + 1
        self._attempts = [0] * len(self._prompts)
        self._tried: list[list[str]] = [[] for _ in self._prompts]
        self._pending = list(range(len(self._prompts)))
        self._retry: list[int] = []
        self._current: list[int] = []

    def next_round(self) -> Round | None:
        """Return the next scatter to run, or None when every item has its final result."""
        if not self._pending:
            return None
        self._current, self._pending = self._pending, []
        left = min(self._budget - self._attempts[i] for i in self._current)
        # One scatter serves every retried item, so avoid any peer one of them already
        # failed on (falling back to all peers when that leaves none).
        avoid = {p for i in self._current for p in self._tried[i]}
        peers = [p for p in self._peers if p not in avoid] or self._peers
        return Round(
            self._current, [self._prompts[i] for i in self._current], peers, max(0, left - 1)
        )

    def settle(self, result: agentfm.ScatterResult) -> agentfm.ScatterResult | None:
        """Take one result of the current round: the item's final result, or None if requeued."""
        index = self._current[result.index]
        self._attempts[index] += max(1, result.attempts)
        self._tried[index].extend(result.peers_tried)
        final = result.model_copy(
            update={
                "index": index,
                "attempts": self._attempts[index],
                "peers_tried": list(self._tried[index]),
            }
        )
        if result.ok:
            return final
        cause = result.exception
        untried = [p for p in self._peers if p not in self._tried[index]]
        if (
            cause is not None
            and can_fail_over(cause, emitted=False)
            and self._attempts[index] < self._budget
            and untried
        ):
            self._pending.append(index)
            return None
        return final


def scatter_failover(
    client: agentfm.AgentFMClient,
    prompts: Sequence[str],
    *,
    peers: Sequence[str],
    max_concurrency: int,
    max_retries: int,
    timeout: float | None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[agentfm.ScatterResult]:
    """Yield every item's final result (completion order, ``index`` = input position)."""
    plan = FailoverRounds(prompts, peers, max_retries)
    while (step := plan.next_round()) is not None:
        for result in client.tasks.scatter_iter(
            step.prompts,
            peer_ids=step.peers,
            max_concurrency=max_concurrency,
            max_retries=step.max_retries,
            timeout=timeout,
        ):
            if (final := plan.settle(result)) is not None:
                yield final
            if cancelled():
                return


async def ascatter_failover(
    client: agentfm.AsyncAgentFMClient,
    prompts: Sequence[str],
    *,
    peers: Sequence[str],
    max_concurrency: int,
    max_retries: int,
    timeout: float | None,
) -> AsyncIterator[agentfm.ScatterResult]:
    """Async twin of `scatter_failover`."""
    plan = FailoverRounds(prompts, peers, max_retries)
    while (step := plan.next_round()) is not None:
        async for result in client.tasks.scatter_iter(
            step.prompts,
            peer_ids=step.peers,
            max_concurrency=max_concurrency,
            max_retries=step.max_retries,
            timeout=timeout,
        ):
            if (final := plan.settle(result)) is not None:
                yield final
