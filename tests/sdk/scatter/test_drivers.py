"""Scatter's drivers (`run_async`, `run_sync`) around the pure scheduler, with fake attempts."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from agentfm import WorkerRejectedError
from agentfm._scatter import AttemptOutcome, Dispatch, ScatterScheduler, run_async, run_sync

if TYPE_CHECKING:
    from agentfm.models import ScatterProgress

A, B = "peer-a", "peer-b"


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
