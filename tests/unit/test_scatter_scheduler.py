"""The pure scatter scheduler and its two drivers (driven with fake attempts)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence

import pytest

from agentfm import (
    AgentFMError,
    ArtifactError,
    AuthenticationError,
    IncompleteStreamError,
    WorkerNotFoundError,
    WorkerRejectedError,
    WorkerStreamError,
)
from agentfm._scatter import (
    AttemptOutcome,
    Dispatch,
    ScatterScheduler,
    is_redispatchable,
    run_async,
    run_sync,
)
from agentfm.models import ScatterProgress

A, B, C = "peer-a", "peer-b", "peer-c"


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


def test_capacity_from_telemetry_plus_own_in_flight() -> None:
    # A has one free slot (2 max, 1 busy elsewhere); B is unknown to telemetry.
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


def _flaky(d: Dispatch) -> AttemptOutcome:
    if d.peer_id == A:
        return AttemptOutcome(error=WorkerRejectedError("❌ ERROR: at capacity"))
    return AttemptOutcome(text=f"{d.prompt}@{d.peer_id}")


def test_sync_driver_runs_concurrently_and_reports_progress() -> None:
    prompts = [f"p{i}" for i in range(12)]
    scheduler = ScatterScheduler(prompts, [A, B], max_concurrency=4, max_retries=1)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    barrier = threading.Barrier(4, timeout=10)
    progress: list[ScatterProgress] = []

    def attempt(d: Dispatch) -> AttemptOutcome:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        if d.index < 4 and d.attempt == 1:
            barrier.wait()  # the first four must all be in flight together
        with lock:
            state["now"] -= 1
        return _flaky(d)

    results = list(run_sync(scheduler, attempt, progress.append))
    assert sorted(r.index for r in results) == list(range(12))
    assert all(r.ok and r.worker_id == B for r in results)
    assert state["peak"] == 4
    assert progress[-1].done == 12
    assert progress[-1].succeeded == 12


async def test_async_driver_matches_the_sync_one() -> None:
    prompts = [f"p{i}" for i in range(12)]
    scheduler = ScatterScheduler(prompts, [A, B], max_concurrency=4, max_retries=1)
    state = {"now": 0, "peak": 0}

    async def attempt(d: Dispatch) -> AttemptOutcome:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0)
        state["now"] -= 1
        return _flaky(d)

    results = [r async for r in run_async(scheduler, attempt)]
    sync_results = list(
        run_sync(ScatterScheduler(prompts, [A, B], max_concurrency=4, max_retries=1), _flaky)
    )
    key = lambda r: (r.index, r.text, r.status)  # noqa: E731
    assert sorted(map(key, results)) == sorted(map(key, sync_results))
    assert state["peak"] == 4


def test_abandoning_the_sync_iterator_stops_cleanly() -> None:
    scheduler = ScatterScheduler(
        [f"p{i}" for i in range(50)], [A], max_concurrency=2, max_retries=0
    )
    iterator = run_sync(scheduler, lambda d: AttemptOutcome(text="ok"))
    next(iterator)
    iterator.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("max_retries", [0, 3])
def test_non_redispatchable_errors_fail_at_once(max_retries: int) -> None:
    scheduler = ScatterScheduler(["x"], [A, B], max_concurrency=1, max_retries=max_retries)
    [result] = drain(
        scheduler, lambda d: AttemptOutcome(error=AuthenticationError("key", status=401))
    )
    assert result.attempts == 1
    assert not result.ok
