"""Scatter: one pure scheduler, driven by a thread-pool driver and an asyncio driver.

`ScatterScheduler` decides which prompt goes to which peer and when, and turns attempt
outcomes into results; it never does I/O, sleeps or reads a clock. The drivers only ask it
for the next dispatch, run the attempt, and report the outcome back, so the sync and async
clients cannot behave differently.

Guarantees: every input yields exactly one `ScatterResult` (carrying its ``index``); at most
``max_concurrency`` attempts run at once; a failed prompt moves to a peer it has not tried
yet; a task that already started on a worker (HTTP 200) is not dispatched again unless the
worker explicitly refused it; inputs are pulled lazily, so memory holds only in-flight work.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentfm.exceptions import (
    AgentFMError,
    AuthenticationError,
    InvalidRequestError,
    RateLimitError,
    WorkerRejectedError,
)
from agentfm.models import PeerID, ScatterProgress, ScatterResult

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "AttemptOutcome",
    "Dispatch",
    "ScatterScheduler",
    "is_redispatchable",
    "run_async",
    "run_sync",
]

_UNBOUNDED = 1 << 30
_BACKOFF_BASE = 0.25
_BACKOFF_MAX = 4.0


@dataclass(frozen=True)
class Dispatch:
    """One attempt the driver must run: prompt ``index`` on ``peer_id`` after ``delay`` s."""

    index: int
    prompt: str
    peer_id: str
    attempt: int
    delay: float = 0.0


@dataclass
class AttemptOutcome:
    """What one attempt produced (``error`` set on failure)."""

    text: str = ""
    artifacts: list[Path] = field(default_factory=list)
    task_id: str | None = None
    error: AgentFMError | None = None
    duration: float = 0.0


@dataclass
class _Item:
    index: int
    prompt: str
    attempts: int = 0
    tried: list[str] = field(default_factory=list)
    duration: float = 0.0


def is_redispatchable(exc: AgentFMError) -> bool:
    """Whether a failed attempt may be sent to another peer.

    A worker that answered ``❌ ERROR:`` refused the task, so it never ran. Any other failure
    after the task started (HTTP 200) may have done work, so it is final. Before the 200,
    only failures that another peer cannot fix (bad request, bad key) are final.
    """
    if isinstance(exc, WorkerRejectedError):
        return True
    if getattr(exc, "task_started", False):
        return False
    return not isinstance(exc, (InvalidRequestError, AuthenticationError, RateLimitError))


class ScatterScheduler:
    """Assign prompts to peers: capacity-aware, with failover to untried peers.

    Args:
        prompts: The inputs (read lazily, in order).
        peer_ids: Candidate peers; duplicates are ignored.
        max_concurrency: Attempts allowed in flight at once.
        max_retries: Extra attempts per prompt after the first.
        capacity: Telemetry per peer as ``(max_tasks, current_tasks)``; peers absent from it
            are treated as unbounded.

    Example:
        ```python
        scheduler = ScatterScheduler(["a", "b"], [peer1, peer2], max_concurrency=2, max_retries=1)
        dispatch = scheduler.next_dispatch()
        result = scheduler.complete(dispatch, AttemptOutcome(text="ok"))
        ```
    """

    def __init__(
        self,
        prompts: Sequence[str],
        peer_ids: Sequence[str],
        *,
        max_concurrency: int,
        max_retries: int,
        capacity: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.peers: list[str] = list(dict.fromkeys(peer_ids))
        self.max_concurrency = max_concurrency
        self.max_attempts = max_retries + 1
        self.total = len(prompts)
        self._inputs: Iterator[tuple[int, str]] = iter(enumerate(prompts))
        self._exhausted = False
        self._waiting: deque[_Item] = deque()
        self._in_flight: dict[tuple[int, int], _Item] = {}
        self._own: dict[str, int] = dict.fromkeys(self.peers, 0)
        self._limit: dict[str, int] = {}
        self._others: dict[str, int] = {}
        for peer, (max_tasks, current) in (capacity or {}).items():
            if peer in self._own and max_tasks > 0:
                self._limit[peer] = max_tasks
                self._others[peer] = max(0, current)
        self._cursor = itertools.count()
        self.done = 0
        self.succeeded = 0
        self.failed = 0
        self.failovers = 0

    @property
    def finished(self) -> bool:
        """True once every input has its result."""
        return self.done == self.total and not self._in_flight

    @property
    def in_flight(self) -> int:
        """Attempts currently running."""
        return len(self._in_flight)

    def progress(self) -> ScatterProgress:
        """A snapshot of the counters."""
        return ScatterProgress(
            total=self.total,
            done=self.done,
            succeeded=self.succeeded,
            failed=self.failed,
            in_flight=self.in_flight,
            failovers=self.failovers,
        )

    def _free(self, peer: str) -> int:
        limit = self._limit.get(peer)
        if limit is None:
            return _UNBOUNDED - self._own[peer]
        return limit - self._others.get(peer, 0) - self._own[peer]

    def _choose(self, item: _Item) -> tuple[str, bool] | None:
        """Pick a peer for ``item``: (peer, already tried) or None when all are full."""
        untried = [p for p in self.peers if p not in item.tried]
        candidates = untried
        if not candidates:
            last = item.tried[-1] if item.tried else None
            candidates = [p for p in self.peers if p != last] or list(self.peers)
        start = next(self._cursor) % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        best = max(rotated, key=self._free)
        if self._free(best) <= 0 and self._in_flight:
            return None
        return best, best in item.tried

    def next_dispatch(self) -> Dispatch | None:
        """The next attempt to start, or None if nothing can start until one completes."""
        if len(self._in_flight) >= self.max_concurrency:
            return None
        for position, item in enumerate(self._waiting):
            choice = self._choose(item)
            if choice is not None:
                del self._waiting[position]
                return self._start(item, *choice)
        if self._exhausted:
            return None
        try:
            index, prompt = next(self._inputs)
        except StopIteration:
            self._exhausted = True
            return None
        item = _Item(index, prompt)
        choice = self._choose(item)
        if choice is None:
            self._waiting.append(item)
            return None
        return self._start(item, *choice)

    def _start(self, item: _Item, peer: str, retried_peer: bool) -> Dispatch:
        item.attempts += 1
        item.tried.append(peer)
        self._own[peer] += 1
        self._in_flight[(item.index, item.attempts)] = item
        delay = 0.0
        if retried_peer:
            delay = min(_BACKOFF_MAX, _BACKOFF_BASE * 2 ** (item.attempts - 2))
        return Dispatch(item.index, item.prompt, peer, item.attempts, delay)

    def complete(self, dispatch: Dispatch, outcome: AttemptOutcome) -> ScatterResult | None:
        """Record an attempt's outcome; return the prompt's final result, or None if requeued."""
        item = self._in_flight.pop((dispatch.index, dispatch.attempt))
        peer = dispatch.peer_id
        self._own[peer] -= 1
        item.duration += outcome.duration
        error = outcome.error
        if error is None:
            if peer in self._others:
                self._others[peer] = max(0, self._others[peer] - 1)
            self.done += 1
            self.succeeded += 1
            return self._result(item, peer, outcome, "success")
        if isinstance(error, WorkerRejectedError) and peer in self._limit:
            self._others[peer] = min(self._limit[peer], self._others.get(peer, 0) + 1)
        if is_redispatchable(error) and item.attempts < self.max_attempts:
            self.failovers += 1
            self._waiting.append(item)
            return None
        self.done += 1
        self.failed += 1
        return self._result(item, peer, outcome, "failed")

    def _result(
        self, item: _Item, peer: str, outcome: AttemptOutcome, status: str
    ) -> ScatterResult:
        error = outcome.error
        return ScatterResult(
            prompt=item.prompt,
            worker_id=PeerID(peer),
            status="success" if status == "success" else "failed",
            text=outcome.text,
            artifacts=outcome.artifacts,
            error=None if error is None else str(error),
            index=item.index,
            task_id=outcome.task_id,
            attempts=item.attempts,
            peers_tried=list(item.tried),
            duration_seconds=item.duration,
            exception=error,
        )


ProgressCallback = Callable[[ScatterProgress], None]


def run_sync(
    scheduler: ScatterScheduler,
    attempt: Callable[[Dispatch], AttemptOutcome],
    on_progress: ProgressCallback | None = None,
) -> Iterator[ScatterResult]:
    """Drive ``scheduler`` with a thread pool; yield results in completion order."""
    pool = ThreadPoolExecutor(
        max_workers=scheduler.max_concurrency, thread_name_prefix="agentfm-scatter"
    )
    running: dict[Future[AttemptOutcome], Dispatch] = {}
    try:
        while True:
            while (dispatch := scheduler.next_dispatch()) is not None:
                running[pool.submit(attempt, dispatch)] = dispatch
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                result = scheduler.complete(running.pop(future), future.result())
                if on_progress is not None:
                    on_progress(scheduler.progress())
                if result is not None:
                    yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


async def run_async(
    scheduler: ScatterScheduler,
    attempt: Callable[[Dispatch], Awaitable[AttemptOutcome]],
    on_progress: ProgressCallback | None = None,
) -> AsyncIterator[ScatterResult]:
    """Drive ``scheduler`` with asyncio tasks; yield results in completion order."""
    running: dict[asyncio.Task[AttemptOutcome], Dispatch] = {}
    try:
        while True:
            while (dispatch := scheduler.next_dispatch()) is not None:
                running[asyncio.ensure_future(attempt(dispatch))] = dispatch
            if not running:
                return
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                result = scheduler.complete(running.pop(task), task.result())
                if on_progress is not None:
                    on_progress(scheduler.progress())
                if result is not None:
                    yield result
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
