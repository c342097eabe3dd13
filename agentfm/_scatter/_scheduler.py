"""`ScatterScheduler`: the pure scheduler (no I/O, no clock: the driver passes ``now``).

The policy it implements is described in `agentfm._scatter`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sized

from agentfm._backoff import exponential
from agentfm._scatter._choice import (
    BREAKER_THRESHOLD,
    FastestLatency,
    best_peer,
    better_wait,
    score,
    usable,
)
from agentfm._scatter._policy import (
    ends_batch,
    is_gateway_unreachable,
    is_overload,
    is_redispatchable,
)
from agentfm._scatter._types import (
    BENCH_FIRST,
    AttemptOutcome,
    Dispatch,
    _Attempt,
    _Item,
    _Peer,
)
from agentfm.exceptions import (
    AgentFMError,
    AgentFMTimeoutError,
    GatewayConnectionError,
    WorkerNotFoundError,
    WorkerRejectedError,
)
from agentfm.models import PeerID, ScatterProgress, ScatterResult

__all__ = ["ScatterScheduler"]

_BACKOFF_BASE = 0.25
_BACKOFF_MAX = 4.0

_BENCH_MAX = 60.0
_OVERLOAD_FIRST = 0.5  # pause without Retry-After; doubles while the gateway stays overloaded
_OVERLOAD_MAX = 30.0
_RETRY_AFTER_MAX = 120.0
_DOWN_PAUSE_FIRST = 0.1  # pause after a refused connection; doubles while the gateway is down
_DOWN_PAUSE_MAX = 2.0
_DOWN_AFTER = 5.0  # seconds of refused connections, with no answer between, that end a batch
_LATENCY_WEIGHT = 0.2  # EWMA weight of a new latency sample
_HEDGE_SAMPLES = 8  # successes needed before the typical latency is trusted
_HEDGE_FACTOR = 3.0  # hedge an attempt running this many times the typical latency
_HEDGE_MIN_EXTRA = 0.05  # ... and at least this many seconds past it
_RECENT = 64  # latency samples kept for the typical latency


class ScatterScheduler:
    """Assign prompts to peers: capacity-, latency- and failure-aware, with failover.

    Args:
        prompts: The inputs, read lazily in order; ``len()`` is used when available (it
            lets the tail rule keep slow peers from finishing last).
        peer_ids: Candidate peers; duplicates are ignored.
        max_concurrency: Attempts allowed in flight at once.
        max_retries: Extra attempts per prompt after the first.
        capacity: Telemetry per peer as ``(max_tasks, current_tasks)``; peers absent from it
            are treated as unbounded.
        hedge: Duplicate stragglers once no new work is waiting (see the module docstring).

    Example:
        ```python
        scheduler = ScatterScheduler(["a", "b"], [peer1, peer2], max_concurrency=2, max_retries=1)
        dispatch = scheduler.next_dispatch(now=time.monotonic())
        result = scheduler.complete(dispatch, AttemptOutcome(text="ok"), now=time.monotonic())
        ```
    """

    def __init__(
        self,
        prompts: Iterable[str],
        peer_ids: Iterable[str],
        *,
        max_concurrency: int,
        max_retries: int,
        capacity: Mapping[str, tuple[int, int]] | None = None,
        hedge: bool = False,
    ) -> None:
        self.peers: list[str] = list(dict.fromkeys(peer_ids))
        self._peers = {p: _Peer(p, n) for n, p in enumerate(self.peers)}
        for peer_id, (max_tasks, current) in (capacity or {}).items():
            peer = self._peers.get(peer_id)
            if peer is not None and max_tasks > 0:
                peer.limit = max_tasks
                peer.others = max(0, current)
        self.max_concurrency = max_concurrency
        self.max_attempts = max_retries + 1
        self.hedge = hedge
        self.total: int | None = len(prompts) if isinstance(prompts, Sized) else None
        self._inputs: Iterator[tuple[int, str]] = iter(enumerate(prompts))
        self._pulled = 0
        self._exhausted = False
        self._waiting: deque[_Item] = deque()
        self._in_flight: dict[tuple[int, int], _Attempt] = {}
        self._live_items = 0
        self._cancelled: list[Dispatch] = []
        self._turn = 0  # round-robin position among equally good peers
        self._peer_list = list(self._peers.values())
        self._gone = 0  # peers the gateway answered 404 for
        self._pause_until = 0.0
        self._overload_pause = _OVERLOAD_FIRST
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._typical: float | None = None
        self._fastest = FastestLatency()
        self._since_typical = 0
        self.done = 0
        self.succeeded = 0
        self.failed = 0
        self.failovers = 0
        self.hedges = 0
        self._abort: AgentFMError | None = None
        self._abort_peer: str | None = None
        self._down_since: float | None = None
        self._down_pause = _DOWN_PAUSE_FIRST

    # -- state -------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once every input has its result."""
        return self._exhausted and not self._waiting and not self._in_flight

    @property
    def aborted(self) -> AgentFMError | None:
        """The error that ended the batch early (a bad key, a lockout, a dead gateway)."""
        return self._abort

    def take_aborted(self, now: float = 0.0) -> list[ScatterResult]:
        """Once the batch is aborted: a failed result for every item not sent again.

        The driver calls this after every `complete`; it returns ``[]`` until the batch is
        aborted. Each input still gets exactly one result.
        """
        if self._abort is None:
            return []
        error = self._abort
        results: list[ScatterResult] = []
        while self._waiting:
            item = self._waiting.popleft()
            results.append(self._abort_result(item, error, now))
        if not self._exhausted:
            for index, prompt in self._inputs:
                self._pulled += 1
                self._live_items += 1
                results.append(self._abort_result(_Item(index, prompt), error, now))
            self._exhausted = True
        return results

    def _abort_result(self, item: _Item, error: AgentFMError, now: float) -> ScatterResult:
        peer_id = item.tried[-1] if item.tried else (self._abort_peer or self.peers[0])
        return self._finish(item, self._peers[peer_id], AttemptOutcome(error=error), now)

    @property
    def in_flight(self) -> int:
        """Attempts currently running."""
        return len(self._in_flight)

    @property
    def pending_items(self) -> int:
        """Inputs pulled but not finished (in flight or waiting for a retry)."""
        return self._live_items

    def progress(self) -> ScatterProgress:
        """A snapshot of the counters."""
        return ScatterProgress(
            total=self.total if self.total is not None else self._pulled,
            done=self.done,
            succeeded=self.succeeded,
            failed=self.failed,
            in_flight=self.in_flight,
            failovers=self.failovers,
        )

    def take_cancelled(self) -> list[Dispatch]:
        """Attempts made redundant by another attempt's success: the driver cancels them."""
        cancelled, self._cancelled = self._cancelled, []
        return cancelled

    def wakeup(self, now: float) -> float | None:
        """When to call `next_dispatch` again even if no attempt completes (None: no need)."""
        times: list[float] = []
        if self._pause_until > now:
            times.append(self._pause_until)
        if self._waiting:
            times.extend(p.benched_until for p in self._peers.values() if p.benched_until > now)
        if self.hedge and self._typical is not None and self._tail():
            limit = self._hedge_after()
            times.extend(
                a.start + limit
                for a in self._in_flight.values()
                if not a.item.hedged and not a.dispatch.hedge
            )
        later = [t for t in times if t > now]
        return min(later) if later else None

    # -- choosing ----------------------------------------------------------------------
    def _choose(self, item: _Item, now: float) -> tuple[_Peer, bool] | None:
        """Pick a peer for ``item``: (peer, already tried) or None to wait."""
        peers = self._alive()
        tried = item.tried
        candidates = [p for p in peers if p.peer_id not in tried] if tried else peers
        retried = not candidates
        if retried:
            last = tried[-1] if tried else None
            candidates = [p for p in peers if p.peer_id != last] or list(peers)
        best = self._pick(candidates, now)
        if best is None:
            if self._in_flight:
                return None  # every candidate is benched or full: wait for a completion
            # Nothing else runs: probe a benched peer rather than stall, and try a full
            # one anyway (telemetry may be stale).
            ready = [p for p in candidates if usable(p, now)] or candidates
            roomy = [p for p in ready if p.free() > 0] or ready
            best = self._pick(roomy)
            assert best is not None
        if self._in_flight and self._better_wait(best, now):
            return None
        return best, retried or best.peer_id in tried

    def _alive(self) -> list[_Peer]:
        """The peers the gateway still knows (all of them if it knows none)."""
        if not self._gone:
            return self._peer_list
        return [p for p in self._peer_list if not p.gone] or list(self._peer_list)

    def _pick(self, peers: list[_Peer], now: float | None = None) -> _Peer | None:
        best = best_peer(peers, self._turn, len(self.peers), self._typical, now)
        if best is not None:
            self._turn += 1  # one turn per choice made
        return best

    def _better_wait(self, peer: _Peer, now: float) -> bool:
        if self.total is None:
            return False
        backlog = (self.total - self._pulled) + len(self._waiting) + 1
        return better_wait(peer, self._peer_list, now, backlog, self._fastest.get(self._peer_list))

    def next_dispatch(self, now: float = 0.0) -> Dispatch | None:
        """The next attempt to start, or None if nothing can start until one completes.

        Args:
            now: The driver's monotonic clock, in seconds.
        """
        if self._abort is not None:
            return None
        if len(self._in_flight) >= self.max_concurrency or now < self._pause_until:
            return None
        for position, item in enumerate(self._waiting) if self._waiting else ():
            choice = self._choose(item, now)
            if choice is not None:
                del self._waiting[position]
                return self._start(item, *choice, now=now)
            if self._in_flight:
                break  # keep order: the head waits for a slot rather than being overtaken
        if not self._exhausted and self._live_items < self.max_concurrency:
            try:
                index, prompt = next(self._inputs)
            except StopIteration:
                self._exhausted = True
            else:
                self._pulled += 1
                self._live_items += 1
                item = _Item(index, prompt)
                choice = self._choose(item, now)
                if choice is None:
                    self._waiting.append(item)
                    return None
                return self._start(item, *choice, now=now)
        if self.hedge:
            return self._hedge(now)
        return None

    def _tail(self) -> bool:
        return self._exhausted and not self._waiting

    def _hedge_after(self) -> float:
        typical = self._typical or 0.0
        return max(typical * _HEDGE_FACTOR, typical + _HEDGE_MIN_EXTRA)

    def _hedge(self, now: float) -> Dispatch | None:
        if self._typical is None or not self._tail():
            return None
        limit = self._hedge_after()
        for attempt in sorted(self._in_flight.values(), key=lambda a: a.start):
            item = attempt.item
            if now - attempt.start < limit:
                break
            if item.hedged or item.done or item.attempts >= self.max_attempts:
                continue
            roomy = [
                p
                for p in self._peers.values()
                if p.peer_id not in item.tried and not p.gone and usable(p, now) and p.free() > 0
            ]
            if not roomy:
                continue
            best = min(roomy, key=lambda p: (score(p, self._typical), -p.free()))
            item.hedged = True
            self.hedges += 1
            return self._start(item, best, False, now=now, hedge=True)
        return None

    def _start(
        self, item: _Item, peer: _Peer, retried_peer: bool, *, now: float, hedge: bool = False
    ) -> Dispatch:
        item.attempts += 1
        item.live += 1
        item.tried.append(peer.peer_id)
        if item.first_start is None:
            item.first_start = now
        peer.own += 1
        if peer.benched_until or peer.consecutive >= BREAKER_THRESHOLD:
            peer.probing = True
        delay = 0.0
        if retried_peer:
            delay = exponential(item.attempts - 2, base=_BACKOFF_BASE, cap=_BACKOFF_MAX)
        dispatch = Dispatch(item.index, item.prompt, peer.peer_id, item.attempts, delay, hedge)
        self._in_flight[(item.index, item.attempts)] = _Attempt(dispatch, item, peer, now + delay)
        return dispatch

    # -- outcomes ----------------------------------------------------------------------
    def complete(
        self, dispatch: Dispatch, outcome: AttemptOutcome, now: float = 0.0
    ) -> ScatterResult | None:
        """Record an attempt's outcome; return the prompt's final result, or None.

        None means the prompt was requeued, another attempt of it is still running, or the
        attempt had already been cancelled (its outcome is ignored).
        """
        attempt = self._in_flight.pop((dispatch.index, dispatch.attempt), None)
        if attempt is None:
            return None
        item, peer = attempt.item, attempt.peer
        item.live -= 1
        peer.own -= 1
        error = outcome.error
        if error is None:
            self._gateway_answered()
            self._peer_succeeded(peer, outcome.duration or max(0.0, now - attempt.start))
            return self._finish(item, peer, outcome, now)
        if self._abort is not None:
            return None if item.live else self._finish(item, peer, outcome, now)
        unreachable = is_gateway_unreachable(error)
        if unreachable:
            self._gateway_refused(now)
        else:
            self._gateway_answered()
        if ends_batch(error):
            self._abort_with(error, peer)
            return None if item.live else self._finish(item, peer, outcome, now)
        if is_overload(error):
            if item.live:
                return None
            return self._overloaded(item, peer, outcome, error, now)
        self._peer_failed(peer, error, now)
        if item.live:
            return None  # a hedge of the same item still runs: let it decide
        last = item.attempts >= self.max_attempts
        if unreachable and self._down_since is not None and now - self._down_since >= _DOWN_AFTER:
            self._abort_with(error, peer)
            return self._finish(item, peer, outcome, now)
        if is_redispatchable(error) and not last and self._has_peer_for(item):
            self.failovers += 1
            self._waiting.append(item)
            return None
        return self._finish(item, peer, outcome, now)

    def _gateway_refused(self, now: float) -> None:
        """The gateway itself could not be reached: pause the batch, back off, keep the time.

        A restart is survived (dispatching resumes once connections succeed again); a gateway
        that stays down for `_DOWN_AFTER` seconds ends the batch instead of every item
        spending its retries on it.
        """
        if self._down_since is None:
            self._down_since = now
        self._pause_until = max(self._pause_until, now + self._down_pause)
        self._down_pause = min(_DOWN_PAUSE_MAX, self._down_pause * 2)

    def _gateway_answered(self) -> None:
        self._down_since = None
        self._down_pause = _DOWN_PAUSE_FIRST

    def _abort_with(self, error: AgentFMError, peer: _Peer) -> None:
        if self._abort is None:
            self._abort = error
            self._abort_peer = peer.peer_id

    def _has_peer_for(self, item: _Item) -> bool:
        """Whether a retry can go anywhere: not when every peer is known to be gone."""
        return self._gone < len(self._peer_list)

    def _overloaded(
        self, item: _Item, peer: _Peer, outcome: AttemptOutcome, error: AgentFMError, now: float
    ) -> ScatterResult | None:
        item.overloads += 1
        # The waits count against the caller's budget: each overload answer is an attempt.
        if item.attempts >= self.max_attempts or (
            error.retry_after is not None and error.retry_after > _RETRY_AFTER_MAX
        ):
            return self._finish(item, peer, outcome, now)
        # The task did not run; the next attempt still prefers a peer not tried yet (an
        # overload may be local to the gateway path that peer sits behind).
        pause = error.retry_after
        if pause is None:
            pause = self._overload_pause
            self._overload_pause = min(_OVERLOAD_MAX, self._overload_pause * 2)
        self._pause_until = max(self._pause_until, now + min(pause, _RETRY_AFTER_MAX))
        self._waiting.appendleft(item)
        return None

    def _peer_succeeded(self, peer: _Peer, latency: float) -> None:
        peer.successes += 1
        peer.consecutive = 0
        peer.probing = False
        peer.benched_until = 0.0
        peer.bench = BENCH_FIRST
        if peer.others:
            peer.others -= 1  # others' tasks finish too as time passes
        old = peer.latency
        peer.latency = latency if old is None else old + _LATENCY_WEIGHT * (latency - old)
        self._fastest.moved(old, peer.latency)
        self._overload_pause = _OVERLOAD_FIRST
        self._recent.append(latency)
        self._since_typical += 1
        if len(self._recent) >= _HEDGE_SAMPLES and (
            self._typical is None or self._since_typical >= 16
        ):
            ordered = sorted(self._recent)
            self._typical = ordered[len(ordered) // 2]
            self._since_typical = 0

    def _peer_failed(self, peer: _Peer, error: AgentFMError, now: float) -> None:
        if not is_redispatchable(error):
            return  # the request was bad, not the peer
        if isinstance(error, GatewayConnectionError) and not isinstance(error, AgentFMTimeoutError):
            return  # the gateway connection failed, whichever peer was asked
        peer.failures += 1
        peer.consecutive += 1
        if isinstance(error, WorkerRejectedError) and peer.limit is not None:
            # Fuller than advertised: no more work until one of ours finishes there.
            peer.others = max(peer.others, peer.limit - peer.own)
        if isinstance(error, WorkerNotFoundError):
            # The gateway does not know this peer: asking again would get the same 404.
            if not peer.gone:
                peer.gone = True
                self._gone += 1
            peer.consecutive = max(peer.consecutive, BREAKER_THRESHOLD)
        if peer.probing or peer.consecutive >= BREAKER_THRESHOLD:
            if peer.probing:
                peer.bench = min(_BENCH_MAX, peer.bench * 2)
            peer.benched_until = now + peer.bench
            peer.probing = False

    def _finish(
        self, item: _Item, peer: _Peer, outcome: AttemptOutcome, now: float
    ) -> ScatterResult:
        item.done = True
        self._live_items -= 1
        self.done += 1
        if outcome.error is None:
            self.succeeded += 1
        else:
            self.failed += 1
        for key, other in list(self._in_flight.items()) if item.live else ():
            if other.item is item:
                del self._in_flight[key]
                other.peer.own -= 1
                item.live -= 1
                self._cancelled.append(other.dispatch)
        started = item.first_start if item.first_start is not None else now
        error = outcome.error
        return ScatterResult(
            prompt=item.prompt,
            worker_id=PeerID(peer.peer_id),
            status="success" if error is None else "failed",
            text=outcome.text,
            artifacts=outcome.artifacts,
            error=None if error is None else str(error),
            index=item.index,
            task_id=outcome.task_id,
            attempts=item.attempts,
            peers_tried=list(item.tried),
            duration_seconds=max(outcome.duration, now - started),
            exception=error,
        )
