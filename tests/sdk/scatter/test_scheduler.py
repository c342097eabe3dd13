"""The pure scatter scheduler on an explicit clock (no I/O, no driver).

One file for the scheduler: results and failover, capacity, speed, breaker, overload,
final answers, hedging and memory. It is longer than 500 lines because each policy of
`agentfm._scatter` gets its own scenario here; the drivers are tested in ``test_drivers.py``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from agentfm import (
    AgentFMError,
    ArtifactError,
    AuthenticationError,
    GatewayConnectionError,
    IncompleteStreamError,
    MeshOverloadedError,
    RateLimitError,
    WorkerNotFoundError,
    WorkerRejectedError,
    WorkerStreamError,
)
from agentfm._scatter import AttemptOutcome, Dispatch, ScatterScheduler, is_redispatchable
from agentfm.models import ScatterProgress

A, B, C, D = "peer-a", "peer-b", "peer-c", "peer-d"
OK = AttemptOutcome(text="ok")


def broken() -> AttemptOutcome:
    return AttemptOutcome(error=IncompleteStreamError("cut", code="incomplete_stream"))


def take_all(scheduler: ScatterScheduler, now: float) -> list[Dispatch]:
    out = []
    while (d := scheduler.next_dispatch(now)) is not None:
        out.append(d)
    return out


def started(exc: AgentFMError) -> AgentFMError:
    exc.task_started = True
    return exc


def drain(scheduler: ScatterScheduler, outcome_for) -> list:  # type: ignore[no-untyped-def]
    """Run the scheduler one attempt at a time (no concurrency)."""
    results = []
    while True:
        dispatch = scheduler.next_dispatch()
        if dispatch is None:
            assert scheduler.finished
            return sorted(results, key=lambda r: r.index)
        result = scheduler.complete(dispatch, outcome_for(dispatch))
        if result is not None:
            results.append(result)
        results.extend(scheduler.take_aborted())


# -- results and failover -------------------------------------------------------------


def test_every_input_gets_exactly_one_result_in_order() -> None:
    prompts = [f"p{i}" for i in range(20)]
    scheduler = ScatterScheduler(prompts, [A, B], max_concurrency=4, max_retries=1)
    results = drain(scheduler, lambda d: AttemptOutcome(text=d.prompt.upper()))
    assert [r.index for r in results] == list(range(20))
    assert [r.text for r in results] == [p.upper() for p in prompts]
    assert all(r.ok and r.attempts == 1 for r in results)
    assert {r.worker_id for r in results} == {A, B}


def test_failover_goes_to_an_untried_peer() -> None:
    scheduler = ScatterScheduler(["x"], [A, B, C], max_concurrency=1, max_retries=2)
    tried: list[str] = []

    def outcome(d: Dispatch) -> AttemptOutcome:
        tried.append(d.peer_id)
        if len(tried) < 3:
            return AttemptOutcome(error=WorkerNotFoundError("gone", status=404))
        return AttemptOutcome(text="ok")

    [result] = drain(scheduler, outcome)
    assert len(set(tried)) == 3
    assert result.ok
    assert result.attempts == 3
    assert result.peers_tried == tried
    assert scheduler.failovers == 2


def test_exhausted_retries_report_the_last_error() -> None:
    scheduler = ScatterScheduler(["x"], [A, B], max_concurrency=1, max_retries=1)
    [result] = drain(
        scheduler, lambda d: AttemptOutcome(error=WorkerRejectedError("❌ ERROR: full"))
    )
    assert not result.ok
    assert result.status == "failed"
    assert result.attempts == 2
    assert sorted(result.peers_tried) == [A, B]
    assert isinstance(result.exception, WorkerRejectedError)
    assert result.error == "❌ ERROR: full"
    assert "exception" not in result.model_dump()


def test_a_broken_stream_is_rerun_but_a_completed_task_is_not() -> None:
    scheduler = ScatterScheduler(["x"], [A, B], max_concurrency=1, max_retries=3)
    calls: list[Dispatch] = []

    def outcome(d: Dispatch) -> AttemptOutcome:
        calls.append(d)
        if d.peer_id == A:
            return AttemptOutcome(error=started(IncompleteStreamError("cut")))
        return AttemptOutcome(text="done", error=ArtifactError("bad zip"))

    [result] = drain(scheduler, outcome)
    assert [d.peer_id for d in calls] == [A, B]  # the cut task moved; the finished one stayed
    assert not result.ok
    assert result.text == "done"
    assert isinstance(result.exception, ArtifactError)


def test_redispatch_rules() -> None:
    assert is_redispatchable(started(WorkerRejectedError("❌ ERROR: busy")))
    assert is_redispatchable(started(IncompleteStreamError("cut")))
    assert is_redispatchable(WorkerNotFoundError("gone", status=404))
    assert not is_redispatchable(AuthenticationError("key", status=401))
    assert not is_redispatchable(ArtifactError("bad zip"))


def test_max_concurrency_and_laziness() -> None:
    consumed: list[int] = []

    class Lazy(Sequence[str]):
        def __len__(self) -> int:
            return 1000

        def __getitem__(self, i):  # type: ignore[no-untyped-def]
            raise AssertionError("random access not needed")

        def __iter__(self) -> Iterator[str]:
            for i in range(1000):
                consumed.append(i)
                yield f"p{i}"

    scheduler = ScatterScheduler(Lazy(), [A], max_concurrency=3, max_retries=0)
    first = [scheduler.next_dispatch() for _ in range(5)]
    assert [d is not None for d in first] == [True, True, True, False, False]
    assert len(consumed) == 3
    assert scheduler.in_flight == 3


@pytest.mark.parametrize("max_retries", [0, 3])
def test_non_redispatchable_errors_fail_at_once(max_retries: int) -> None:
    scheduler = ScatterScheduler(["x"], [A, B], max_concurrency=1, max_retries=max_retries)
    [result] = drain(
        scheduler, lambda d: AttemptOutcome(error=AuthenticationError("key", status=401))
    )
    assert result.attempts == 1
    assert not result.ok


# -- capacity, speed and health ---------------------------------------------------------


def test_a_peer_at_capacity_gets_no_work() -> None:
    # A advertises 2 slots with 1 taken by someone else; B has 3.
    scheduler = ScatterScheduler(
        [f"p{i}" for i in range(10)],
        [A, B],
        max_concurrency=10,
        max_retries=0,
        capacity={A: (2, 1), B: (3, 0)},
    )
    first = take_all(scheduler, 0.0)
    assert sorted(d.peer_id for d in first) == [A, B, B, B]
    scheduler.complete(first[0], OK, 1.0)
    [again] = take_all(scheduler, 1.0)
    assert again.peer_id == first[0].peer_id
    # Own attempts count too: A has one free slot (2 max, 1 busy elsewhere), B one.
    capacity = {A: (2, 1), B: (1, 0)}
    scheduler = ScatterScheduler(
        ["1", "2", "3"], [A, B], max_concurrency=8, max_retries=0, capacity=capacity
    )
    d1, d2 = scheduler.next_dispatch(), scheduler.next_dispatch()
    assert d1 is not None
    assert d2 is not None
    assert {d1.peer_id, d2.peer_id} == {A, B}
    assert scheduler.next_dispatch() is None  # both full: wait for a completion
    scheduler.complete(d1, AttemptOutcome(text="ok"))
    d3 = scheduler.next_dispatch()
    assert d3 is not None
    assert d3.peer_id == d1.peer_id


def test_full_telemetry_does_not_deadlock() -> None:
    scheduler = ScatterScheduler(["1"], [A], max_concurrency=2, max_retries=0, capacity={A: (1, 1)})
    dispatch = scheduler.next_dispatch()
    assert dispatch is not None
    assert dispatch.peer_id == A


# -- retries, missing workers, progress -------------------------------------------------


def test_retry_on_an_already_tried_peer_backs_off() -> None:
    scheduler = ScatterScheduler(["x"], [A], max_concurrency=1, max_retries=2)
    first = scheduler.next_dispatch()
    assert first is not None
    assert first.delay == 0
    scheduler.complete(first, AttemptOutcome(error=WorkerStreamError("cut")))
    second = scheduler.next_dispatch()
    assert second is not None
    assert second.peer_id == A
    assert second.delay > 0


def test_a_missing_worker_is_not_asked_again() -> None:
    # 404 "Worker not found": the same peer would answer the same; with no other peer
    # the item is final after one attempt, whatever max_retries says.
    scheduler = ScatterScheduler(["x", "y"], [A], max_concurrency=1, max_retries=2)
    gone = AttemptOutcome(error=WorkerNotFoundError("gone", status=404))
    results = drain(scheduler, lambda d: gone)
    assert [r.attempts for r in results] == [1, 1]
    assert all(not r.ok for r in results)


def test_a_missing_worker_fails_over_to_another_peer() -> None:
    scheduler = ScatterScheduler(["x"], [A, B], max_concurrency=1, max_retries=2)
    first = scheduler.next_dispatch()
    assert first is not None
    scheduler.complete(first, AttemptOutcome(error=WorkerNotFoundError("gone", status=404)))
    second = scheduler.next_dispatch()
    assert second is not None
    assert second.peer_id != first.peer_id


def test_progress_counts() -> None:
    scheduler = ScatterScheduler(["a", "b"], [A, B], max_concurrency=2, max_retries=1)
    d1, d2 = scheduler.next_dispatch(), scheduler.next_dispatch()
    assert d1 is not None
    assert d2 is not None
    scheduler.complete(d1, AttemptOutcome(text="ok"))
    scheduler.complete(d2, AttemptOutcome(error=WorkerNotFoundError("x", status=404)))
    assert scheduler.progress() == ScatterProgress(
        total=2, done=1, succeeded=1, failed=0, in_flight=0, failovers=1
    )


# -- rejections, speed, breaker, overload, final answers, hedging, memory ---------------


def test_a_rejection_marks_the_peer_full_and_is_never_a_success() -> None:
    scheduler = ScatterScheduler(
        ["x", "y"], [A, B], max_concurrency=4, max_retries=1, capacity={A: (4, 0), B: (4, 0)}
    )
    d1, d2 = take_all(scheduler, 0.0)
    on_a = d1 if d1.peer_id == A else d2
    on_b = d2 if on_a is d1 else d1
    rejected = AttemptOutcome(
        text="❌ ERROR: Worker is at max capacity (4/4).",
        error=WorkerRejectedError("❌ ERROR: Worker is at max capacity (4/4)."),
    )
    assert scheduler.complete(on_a, rejected, 0.1) is None
    [retry] = take_all(scheduler, 0.1)
    assert retry.peer_id == B  # A is full now, and B is the untried peer anyway
    assert scheduler.complete(on_b, OK, 0.2) is not None
    result = scheduler.complete(retry, OK, 0.3)
    assert result is not None
    assert result.ok
    assert result.peers_tried == [A, B]


def test_fast_peers_get_more_work() -> None:
    # A answers in 0.1 s, B in 1 s; each has 2 slots. Run a simulated batch.
    latency = {A: 0.1, B: 1.0}
    scheduler = ScatterScheduler(
        [f"p{i}" for i in range(200)],
        [A, B],
        max_concurrency=4,
        max_retries=0,
        capacity={A: (2, 0), B: (2, 0)},
    )
    served = simulate(scheduler, lambda d: (latency[d.peer_id], OK))
    assert served[A] > 5 * served[B]


def simulate(scheduler: ScatterScheduler, run: Any) -> dict[str, int]:
    """Event-driven simulation: ``run(dispatch) -> (seconds, outcome)``."""
    now = 0.0
    running: list[tuple[float, int, Dispatch, AttemptOutcome]] = []
    served: dict[str, int] = {}
    seq = 0
    while not scheduler.finished:
        for d in take_all(scheduler, now):
            seconds, outcome = run(d)
            seq += 1
            running.append((now + d.delay + seconds, seq, d, outcome))
        if not running:
            wake = scheduler.wakeup(now)
            assert wake is not None, "stalled with nothing running"
            now = wake
            continue
        running.sort(key=lambda r: (r[0], r[1]))
        wake = scheduler.wakeup(now)
        if wake is not None and wake < running[0][0]:
            now = wake
            continue
        end, _, d, outcome = running.pop(0)
        now = end
        if scheduler.complete(d, outcome, now) is not None and outcome.error is None:
            served[d.peer_id] = served.get(d.peer_id, 0) + 1
        cancelled = {(c.index, c.attempt) for c in scheduler.take_cancelled()}
        running = [r for r in running if (r[2].index, r[2].attempt) not in cancelled]
    return served


def test_slow_peers_get_no_work_at_the_tail() -> None:
    latency = {A: 0.2, B: 0.2, C: 0.2, D: 1.0}
    scheduler = ScatterScheduler(
        [f"p{i}" for i in range(400)],
        [A, B, C, D],
        max_concurrency=16,
        max_retries=0,
        capacity={p: (4, 0) for p in latency},
    )
    last_start: dict[str, float] = {}
    clock = {"now": 0.0}

    def run(d: Dispatch) -> tuple[float, AttemptOutcome]:
        last_start[d.peer_id] = clock["now"]
        return latency[d.peer_id], OK

    original = scheduler.next_dispatch

    def tracking(now: float = 0.0) -> Dispatch | None:
        clock["now"] = now
        return original(now)

    scheduler.next_dispatch = tracking  # type: ignore[method-assign]
    served = simulate(scheduler, run)
    assert sum(served.values()) == 400
    # Fluid bound: 400 / (12/0.2 + 4/1.0) = 6.25 s. The slow peer's last item must start
    # early enough to end by then, rather than 1 s before a long tail.
    assert last_start[D] + 1.0 <= 400 / (12 / 0.2 + 4 / 1.0) + 0.2


def test_breaker_benches_then_probes_once() -> None:
    scheduler = ScatterScheduler(
        [f"p{i}" for i in range(50)],
        [A, B],
        max_concurrency=3,
        max_retries=0,
        capacity={A: (4, 0), B: (1, 0)},
    )
    first = take_all(scheduler, 0.0)
    assert [d.peer_id for d in first] == [A, A, A]  # the roomiest peer first
    for d in first:
        scheduler.complete(d, broken(), 0.1)  # three failures in a row: A is benched
    on_b = take_all(scheduler, 0.1)
    assert [d.peer_id for d in on_b] == [B]  # B is full after one; A gets nothing
    scheduler.complete(on_b[0], OK, 0.2)
    on_b = take_all(scheduler, 0.2)
    assert [d.peer_id for d in on_b] == [B]
    probe = take_all(scheduler, 2.2)  # past the 2 s bench: exactly one probe
    assert [d.peer_id for d in probe] == [A]
    scheduler.complete(probe[0], broken(), 2.3)  # the probe fails: benched for 4 s
    scheduler.complete(on_b[0], OK, 2.4)
    on_b = take_all(scheduler, 2.4)
    assert [d.peer_id for d in on_b] == [B]
    assert take_all(scheduler, 6.2) == []  # still benched (until 6.3), B still busy
    probe = take_all(scheduler, 6.4)
    assert [d.peer_id for d in probe] == [A]
    scheduler.complete(probe[0], OK, 6.5)  # healed: A takes full work again
    assert [d.peer_id for d in take_all(scheduler, 6.5)] == [A, A]


def test_retry_after_pauses_dispatch_and_counts_as_an_attempt() -> None:
    scheduler = ScatterScheduler(["x", "y"], [A], max_concurrency=2, max_retries=1)
    d1, d2 = take_all(scheduler, 0.0)
    busy = MeshOverloadedError("all busy", code="mesh_overloaded", status=503, retry_after=5.0)
    assert scheduler.complete(d1, AttemptOutcome(error=busy), 1.0) is None
    assert scheduler.next_dispatch(5.9) is None  # Retry-After: 5 s from t=1
    assert scheduler.wakeup(1.0) == 6.0
    assert scheduler.complete(d2, OK, 2.0) is not None
    again = scheduler.next_dispatch(6.0)
    assert again is not None
    assert again.index == d1.index
    result = scheduler.complete(again, OK, 6.5)
    assert result is not None
    assert result.ok
    assert result.attempts == 2  # the overload answer is visible and used the budget


def test_overload_is_bounded_by_max_retries() -> None:
    busy = MeshOverloadedError("all busy", code="mesh_overloaded", status=503, retry_after=1.0)
    for max_retries in (0, 2):
        scheduler = ScatterScheduler(["x"], [A], max_concurrency=1, max_retries=max_retries)
        now, result = 0.0, None
        while result is None:
            d = scheduler.next_dispatch(now)
            if d is None:
                now = scheduler.wakeup(now) or now + 1
                continue
            result = scheduler.complete(d, AttemptOutcome(error=busy), now)
        assert not result.ok
        assert result.attempts == max_retries + 1


def test_rate_limited_is_final_and_ends_the_batch() -> None:
    scheduler = ScatterScheduler(
        [f"p{i}" for i in range(6)], [A, B], max_concurrency=1, max_retries=3
    )
    limited = RateLimitError("slow down", code="rate_limited", status=429, retry_after=60.0)
    d = scheduler.next_dispatch(0.0)
    assert d is not None
    first = scheduler.complete(d, AttemptOutcome(error=limited), 0.1)
    assert first is not None
    assert first.attempts == 1
    rest = scheduler.take_aborted(0.1)
    assert [r.index for r in rest] == [1, 2, 3, 4, 5]
    assert all(r.attempts == 0 and r.exception is limited for r in rest)
    assert scheduler.next_dispatch(100.0) is None
    assert scheduler.finished


def test_a_dead_gateway_fails_the_rest_fast() -> None:
    down = GatewayConnectionError("refused", code="connection_error")
    scheduler = ScatterScheduler(
        [f"p{i}" for i in range(50)], [A, B], max_concurrency=1, max_retries=2
    )
    sent, results, now = 0, [], 0.0
    while not scheduler.finished:
        d = scheduler.next_dispatch(now)
        if d is None:
            now = scheduler.wakeup(now) or now + 1
            continue
        sent += 1
        result = scheduler.complete(d, AttemptOutcome(error=down), now)
        results += ([result] if result else []) + scheduler.take_aborted(now)
    assert sorted(r.index for r in results) == list(range(50))
    assert all(not r.ok for r in results)
    # Backoff 0.1 s doubling to 2 s between probes, and the end after 5 s of refusals:
    # a handful of requests in all, not 50 x 3.
    assert sent <= 8
    assert 5.0 <= now < 8.0


def test_a_gateway_restart_only_pauses_the_batch() -> None:
    down = GatewayConnectionError("refused", code="connection_error")
    scheduler = ScatterScheduler(
        [f"p{i}" for i in range(10)], [A, B], max_concurrency=2, max_retries=2
    )
    results, now = [], 0.0
    while not scheduler.finished:
        d = scheduler.next_dispatch(now)
        if d is None:
            now = scheduler.wakeup(now) or now + 0.1
            continue
        # The gateway is down from t=1 to t=3 (a restart), up otherwise.
        outcome = AttemptOutcome(error=down) if 1.0 <= now < 3.0 else OK
        result = scheduler.complete(d, outcome, now)
        results += ([result] if result else []) + scheduler.take_aborted(now)
        now += 0.25
    assert sorted(r.index for r in results) == list(range(10))
    assert scheduler.aborted is None
    # Probes during the outage use attempts (0.1, 0.2, 0.4, 0.8 s apart), so at most the
    # items probing then can run out; everything after the restart succeeds.
    assert sum(not r.ok for r in results) <= 1
    assert all(r.ok for r in results if r.index != 4)  # p4 probed with all 3 attempts


def test_overload_without_retry_after_backs_off_exponentially() -> None:
    scheduler = ScatterScheduler(["x"], [A], max_concurrency=1, max_retries=5)
    now, pauses = 0.0, []
    busy = MeshOverloadedError("busy", code="mesh_overloaded", status=503)
    for _ in range(4):
        d = scheduler.next_dispatch(now)
        assert d is not None
        scheduler.complete(d, AttemptOutcome(error=busy), now)
        wake = scheduler.wakeup(now)
        assert wake is not None
        pauses.append(wake - now)
        now = wake
    assert pauses == sorted(pauses)
    assert pauses[-1] > pauses[0]


def test_hedging_is_off_by_default() -> None:
    scheduler = ScatterScheduler(["a", "b"], [A, B, C], max_concurrency=3, max_retries=2)
    first = take_all(scheduler, 0.0)
    assert len(first) == 2
    assert take_all(scheduler, 1000.0) == []


def test_hedging_duplicates_a_straggler_and_counts_it_once() -> None:
    prompts = [f"p{i}" for i in range(20)]
    scheduler = ScatterScheduler(prompts, [A, B, C], max_concurrency=3, max_retries=2, hedge=True)
    now = 0.0
    results = []
    stuck: Dispatch | None = None
    while stuck is None or not scheduler.finished:
        for d in take_all(scheduler, now):
            if d.index == 19 and d.attempt == 1:
                stuck = d  # never completes on its own
            elif d.hedge:
                assert stuck is not None
                assert d.index == stuck.index
                assert d.peer_id != stuck.peer_id
                result = scheduler.complete(d, OK, now + 0.1)
                assert result is not None
                results.append(result)
                assert scheduler.take_cancelled() == [stuck]
            else:
                result = scheduler.complete(d, OK, now + 0.1)
                assert result is not None
                results.append(result)
        now += 0.1
        assert now < 100, "the straggler was never hedged"
    assert stuck is not None
    assert scheduler.complete(stuck, OK, now) is None  # the cancelled loser counts for nothing
    assert sorted(r.index for r in results) == list(range(20))
    assert scheduler.succeeded == 20
    assert scheduler.hedges == 1


def test_pending_state_never_exceeds_max_concurrency() -> None:
    pulled = 0

    def prompts() -> Iterator[str]:
        nonlocal pulled
        for i in range(5000):
            pulled += 1
            yield f"p{i}"

    rng = random.Random(7)
    scheduler = ScatterScheduler(prompts(), [A, B, C], max_concurrency=8, max_retries=2)
    running: list[Dispatch] = []
    results = 0
    now = 0.0
    while not scheduler.finished:
        running += take_all(scheduler, now)
        assert scheduler.in_flight <= 8
        assert scheduler.pending_items <= 8
        assert pulled <= results + 8  # inputs are read only as slots free up
        if not running:
            wake = scheduler.wakeup(now)
            assert wake is not None
            now = wake
            continue
        d = running.pop(rng.randrange(len(running)))
        outcome = broken() if rng.random() < 0.2 else OK
        now += 0.001
        if scheduler.complete(d, outcome, now) is not None:
            results += 1
        for c in scheduler.take_cancelled():
            running.remove(c)
    assert results == 5000


def test_a_gateway_connection_error_does_not_bench_the_peer() -> None:
    scheduler = ScatterScheduler(
        [f"p{i}" for i in range(12)],
        [A, B],
        max_concurrency=2,
        max_retries=0,
        capacity={A: (1, 0), B: (1, 0)},
    )
    first = take_all(scheduler, 0.0)
    assert sorted(d.peer_id for d in first) == [A, B]
    lost = AttemptOutcome(error=GatewayConnectionError("reset", code="connection_error"))
    # Four connection errors on A, each followed by an answer from B (so the gateway is not
    # "down"): a benched A would get no more work.
    for n in range(4):
        on_a = next(d for d in first if d.peer_id == A)
        on_b = next(d for d in first if d.peer_id == B)
        scheduler.complete(on_a, lost, n + 0.4)
        scheduler.complete(on_b, OK, n + 0.5)
        first = take_all(scheduler, n + 0.5)
        assert sorted(d.peer_id for d in first) == [A, B]
