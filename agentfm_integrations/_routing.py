"""Route one model call by name, with failover: shared by the LangChain and LlamaIndex classes.

Batches are one SDK scatter (``client.tasks.scatter_iter``), which fails over by itself. A
single call (invoke, complete, stream, a tool call) has no SDK equivalent that routes by
model, so it is planned here: match the workers like the gateway does, order them by load,
and move to an untried peer when an attempt fails before any text reached the caller.

The decisions (`order_peers`, `PeerPlan`, `RejectionGate`, `can_fail_over`) are pure; the
drivers below only perform the calls, so the sync and async twins cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import agentfm

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

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


def require_workers(
    model: str, workers: Sequence[agentfm.WorkerProfile]
) -> Sequence[agentfm.WorkerProfile]:
    """Return ``workers``, or raise the gateway's own ``model_not_found`` error if empty."""
    if not workers:
        msg = f"no live worker matches model {model!r} (peer id, agent name or engine)"
        raise agentfm.ModelNotFoundError(msg, code="model_not_found", status=404)
    return workers


def require_peers(model: str, workers: Sequence[agentfm.WorkerProfile]) -> list[str]:
    """Return the matched peer ids (a scatter's candidates), or raise ``model_not_found``."""
    return [w.peer_id for w in require_workers(model, workers)]


def mesh_capacity(workers: Sequence[agentfm.WorkerProfile]) -> int:
    """Total task slots advertised by ``workers`` (a worker without a limit counts as one)."""
    return max(1, sum(max(1, w.max_tasks) for w in workers))


def can_fail_over(exc: BaseException, *, emitted: bool) -> bool:
    """Say whether an attempt's failure may be retried on another peer.

    Once text has reached the caller a retry would repeat it, so only failures before
    the first emitted byte fail over.
    """
    return (
        not emitted and isinstance(exc, agentfm.AgentFMError) and not isinstance(exc, _NO_FAILOVER)
    )


def order_peers(
    workers: Sequence[agentfm.WorkerProfile],
    in_flight: Mapping[str, int] | None = None,
    rng: random.Random | None = None,
) -> list[str]:
    """Order matched workers for one task, least effectively loaded first.

    Telemetry is seconds old, so the load counts this process's own tasks in flight too,
    and ties are broken at random: otherwise concurrent calls would all pick the same
    "idle" worker.
    """
    own = in_flight or {}

    def load(worker: agentfm.WorkerProfile) -> float:
        busy = worker.current_tasks + own.get(worker.peer_id, 0)
        return busy / worker.max_tasks if worker.max_tasks > 0 else 0.0

    shuffled = list(workers)
    (rng or random).shuffle(shuffled)
    shuffled.sort(key=load)
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


class _InFlight:
    """This process's tasks in flight per peer id (peer ids are global identities)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @contextlib.contextmanager
    def on(self, peer: str) -> Iterator[None]:
        with self._lock:
            self._counts[peer] += 1
        try:
            yield
        finally:
            with self._lock:
                self._counts[peer] -= 1
                if self._counts[peer] <= 0:
                    del self._counts[peer]


IN_FLIGHT = _InFlight()


def _plan(model: str, workers: Sequence[agentfm.WorkerProfile], max_retries: int) -> PeerPlan:
    peers = order_peers(require_workers(model, workers), IN_FLIGHT.snapshot())
    return PeerPlan(peers, max_retries)


# --------------------------------------------------------------------------------------
# drivers


def run_task(
    client: agentfm.AgentFMClient,
    *,
    model: str,
    prompt: str,
    max_retries: int,
    timeout: float | None,
    min_honesty: float | None = None,
) -> tuple[agentfm.TaskResult, list[str]]:
    """Run one task on the best matching peer, failing over per `PeerPlan`.

    Returns:
        The result and the peers tried, the serving one last.
    """
    plan = _plan(model, client.workers.match(model, min_honesty=min_honesty), max_retries)
    while (step := plan.next()) is not None:
        peer, delay = step
        time.sleep(delay)
        try:
            with IN_FLIGHT.on(peer):
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
    min_honesty: float | None = None,
) -> tuple[agentfm.TaskResult, list[str]]:
    """Async twin of `run_task`."""
    plan = _plan(model, await client.workers.match(model, min_honesty=min_honesty), max_retries)
    while (step := plan.next()) is not None:
        peer, delay = step
        await asyncio.sleep(delay)
        try:
            with IN_FLIGHT.on(peer):
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
    min_honesty: float | None = None,
) -> Iterator[str | StreamEnd]:
    """Stream one task's text, failing over while nothing has been emitted yet.

    Yields text pieces, then one `StreamEnd`. ``stop_when`` is checked after each piece so a
    caller that has seen a stop sequence can end the task early (closing the stream makes
    the gateway cancel the agent).
    """
    plan = _plan(model, client.workers.match(model, min_honesty=min_honesty), max_retries)
    while (step := plan.next()) is not None:
        peer, delay = step
        time.sleep(delay)
        gate = RejectionGate()
        try:
            with (
                IN_FLIGHT.on(peer),
                client.tasks.stream(peer_id=peer, prompt=prompt, timeout=timeout) as stream,
            ):
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
    min_honesty: float | None = None,
) -> AsyncIterator[str | StreamEnd]:
    """Async twin of `stream_task`."""
    plan = _plan(model, await client.workers.match(model, min_honesty=min_honesty), max_retries)
    while (step := plan.next()) is not None:
        peer, delay = step
        await asyncio.sleep(delay)
        gate = RejectionGate()
        try:
            with IN_FLIGHT.on(peer):
                stream = client.tasks.stream(peer_id=peer, prompt=prompt, timeout=timeout)
                async with stream:
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
