"""Route one task by model name, with failover: the pure pieces behind ``tasks.run(model=…)``.

Whether a failed attempt may be sent again is `agentfm._scatter.is_redispatchable`, the
same rule scatter uses; this module only decides *where* a single task goes next and when.
Nothing here performs I/O or sleeps: the routed flows of `agentfm._task_flows` ask it, and
the sync and the async driver perform those flows alike.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import Counter
from typing import TYPE_CHECKING

from agentfm._backoff import exponential
from agentfm._scatter import is_redispatchable
from agentfm.exceptions import AgentFMError, NoWorkerForModelError, WorkerRejectedError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from agentfm.models import WorkerProfile

__all__ = ["IN_FLIGHT", "PeerPlan", "order_peers", "plan_for"]


def order_peers(
    workers: Sequence[WorkerProfile],
    in_flight: Mapping[str, int] | None = None,
    rng: random.Random | None = None,
) -> list[str]:
    """The SDK's one order of candidate workers: least effectively loaded first.

    Telemetry is seconds old, so the load counts this process's own tasks in flight too;
    a lower CPU use breaks a tie in load, and exact ties are broken at random: otherwise
    concurrent calls would all pick the same "idle" worker. `match_workers` (and so
    ``workers.match`` and every call routed by ``model=``) orders its matches with it.
    """
    own = in_flight or {}

    def load(worker: WorkerProfile) -> tuple[float, float]:
        busy = worker.current_tasks + own.get(worker.peer_id, 0)
        return (busy / worker.max_tasks if worker.max_tasks > 0 else 0.0), worker.cpu_usage_pct

    shuffled = list(workers)
    (rng or random).shuffle(shuffled)
    shuffled.sort(key=load)
    return list(dict.fromkeys(w.peer_id for w in shuffled))


class PeerPlan:
    """Decide which peer a single task tries next, and after how long.

    A failed attempt that `is_redispatchable` allows moves to a peer not tried yet and
    uses up one of ``max_retries``. A refusal (``❌ ERROR:``, the worker was full) means the
    task never ran: the peer goes to the back of the line, and once every peer has refused
    in a round the next round starts after a short backoff. Rounds are bounded by
    ``max_retries + 1`` too.
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
            delay = exponential(self._round, base=0.05, cap=1.0)
        if not self._line or self._failures >= self._budget:
            return None
        peer = self._line.pop(0)
        self.tried.append(peer)
        return peer, delay

    def failed(self, peer: str, exc: AgentFMError, *, emitted: bool = False) -> bool:
        """Record a failed attempt; return whether the task may be tried again.

        Args:
            peer: The peer of the failed attempt.
            exc: Its error.
            emitted: Whether text already reached the caller (a retry would repeat it).
        """
        if emitted or not is_redispatchable(exc):
            return False
        if isinstance(exc, WorkerRejectedError):
            self._refused.append(peer)
        else:
            self._failures += 1
        return True


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


def plan_for(model: str, workers: Sequence[WorkerProfile], max_retries: int) -> PeerPlan:
    """The plan of one task routed by ``model`` over the matching ``workers``.

    Raises:
        NoWorkerForModelError: No live worker matches (a `ModelNotFoundError` and a
            `WorkerNotFoundError`).
    """
    if not workers:
        raise NoWorkerForModelError(
            f"no live worker matches model {model!r} (peer id, agent name or engine)",
            code="model_not_found",
            status=404,
        )
    # `match_workers` orders by the same rule; ordering here too keeps a replaced
    # ``workers.match`` (a caller's own matcher) on it.
    return PeerPlan(order_peers(workers, IN_FLIGHT.snapshot()), max_retries)
