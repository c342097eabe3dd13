"""Scatter's drivers: `run_async` (asyncio tasks) and `run_sync` (that loop in a thread).

They only ask the scheduler for the next dispatch, run the attempt and report the outcome
back, so the sync and async clients cannot behave differently.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from agentfm._scatter._types import AttemptOutcome, Dispatch
from agentfm.models import ScatterProgress, ScatterResult

if TYPE_CHECKING:
    from agentfm._scatter._scheduler import ScatterScheduler

__all__ = ["run_async", "run_sync"]


ProgressCallback = Callable[[ScatterProgress], None]
Attempt = Callable[[Dispatch], Coroutine[Any, Any, AttemptOutcome]]


async def run_async(
    scheduler: ScatterScheduler,
    attempt: Attempt,
    on_progress: ProgressCallback | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_close: Callable[[], None] | None = None,
) -> AsyncGenerator[ScatterResult, None]:
    """Drive ``scheduler`` with asyncio tasks; yield results in completion order.

    Args:
        scheduler: The scheduler to drive.
        attempt: Runs one dispatch; must report failures in its outcome, not raise.
        on_progress: Called with a snapshot after every completed attempt.
        clock: Monotonic seconds (the scheduler's ``now``).
        on_close: Called on the loop once the scatter ends (e.g. to close connections).
    """
    loop = asyncio.get_running_loop()
    running: dict[tuple[int, int], asyncio.Task[None]] = {}
    # Outcomes in completion order; an exception is a broken ``attempt`` (re-raised here).
    finished: deque[tuple[Dispatch, AttemptOutcome | BaseException]] = deque()
    signal: list[asyncio.Future[None] | None] = [None]

    def wake(waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run_one(dispatch: Dispatch) -> None:
        # Reports its own outcome: cheaper than a done callback, which costs the loop one
        # more turn per attempt. A cancelled attempt reports nothing (it lost to a hedge).
        if dispatch.delay:
            await asyncio.sleep(dispatch.delay)
        try:
            outcome: AttemptOutcome | BaseException = await attempt(dispatch)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            outcome = exc
        finished.append((dispatch, outcome))
        wake(signal[0])

    try:
        while True:
            now = clock()
            while (dispatch := scheduler.next_dispatch(now)) is not None:
                running[(dispatch.index, dispatch.attempt)] = loop.create_task(run_one(dispatch))
            if scheduler.finished:
                return
            if not finished:
                waiter: asyncio.Future[None] = loop.create_future()
                signal[0] = waiter
                when = scheduler.wakeup(now)
                timer = None if when is None else loop.call_later(when - now, wake, waiter)
                try:
                    await waiter
                finally:
                    signal[0] = None
                    if timer is not None:
                        timer.cancel()
            while finished:
                dispatch, outcome = finished.popleft()
                running.pop((dispatch.index, dispatch.attempt), None)
                if isinstance(outcome, BaseException):
                    raise outcome
                now = clock()  # one reading for the outcome and any results it ended
                result = scheduler.complete(dispatch, outcome, now)
                for loser in scheduler.take_cancelled():
                    lost = running.pop((loser.index, loser.attempt), None)
                    if lost is not None:
                        lost.cancel()
                aborted = scheduler.take_aborted(now)
                if on_progress is not None:
                    on_progress(scheduler.progress())
                if result is not None:
                    yield result
                for result in aborted:
                    yield result
    finally:
        for task in running.values():
            task.cancel()
        if running:
            await asyncio.gather(*running.values(), return_exceptions=True)
        if on_close is not None:
            on_close()
            await asyncio.sleep(0)  # let the closed transports finish closing


# A chunk of results and progress snapshots in order, a failure, or None (the end).
_Message = list[ScatterResult | ScatterProgress] | BaseException | None


def run_sync(
    scheduler: ScatterScheduler,
    attempt: Callable[[Dispatch], AttemptOutcome] | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    async_attempt: Attempt | None = None,
    on_close: Callable[[], None] | None = None,
) -> Iterator[ScatterResult]:
    """Drive ``scheduler`` with `run_async` on a private event loop in a helper thread.

    ``attempt`` is a blocking function, run in a pool of ``max_concurrency`` threads;
    ``async_attempt`` (preferred: no thread per attempt) runs on the helper loop. Results
    and progress snapshots are handed over through a queue, so ``on_progress`` runs in the
    caller's thread. Abandoning the iterator cancels the attempts still running.

    What one turn of the helper loop produced crosses to the caller's thread as one chunk:
    one hand-over (a lock and a thread wake-up) per turn rather than per result.
    """
    messages: queue.SimpleQueue[_Message] = queue.SimpleQueue()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    pool: ThreadPoolExecutor | None = None
    if async_attempt is None:
        if attempt is None:
            raise TypeError("run_sync needs attempt or async_attempt")
        blocking = attempt
        pool = ThreadPoolExecutor(scheduler.max_concurrency, thread_name_prefix="agentfm-scatter")
        runner = pool

        async def in_thread(dispatch: Dispatch) -> AttemptOutcome:
            return await loop.run_in_executor(runner, blocking, dispatch)

        async_attempt = in_thread
    chosen: Attempt = async_attempt

    chunk: list[ScatterResult | ScatterProgress] = []

    def hand_over() -> None:
        if chunk:
            messages.put(chunk.copy())
            chunk.clear()

    def post(message: ScatterResult | ScatterProgress) -> None:
        if not chunk:
            loop.call_soon(hand_over)  # once this turn's results are all in
        chunk.append(message)

    async def pump() -> None:
        agen = run_async(
            scheduler, chosen, post if on_progress is not None else None, on_close=on_close
        )
        try:
            async for result in agen:
                post(result)
        finally:
            hand_over()  # before the end (or a failure) is put on the queue
            await agen.aclose()

    tasks: list[asyncio.Task[None]] = []

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        try:
            tasks.append(loop.create_task(pump()))
            started.set()
            loop.run_until_complete(tasks[0])
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # handed over to the caller's thread
            messages.put(exc)
        finally:
            started.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            messages.put(None)

    thread = threading.Thread(target=thread_main, name="agentfm-scatter-loop", daemon=True)
    thread.start()
    try:
        while True:
            message = messages.get()
            if message is None:
                return
            if isinstance(message, BaseException):
                raise message
            for item in message:
                if isinstance(item, ScatterResult):
                    yield item
                elif on_progress is not None:
                    on_progress(item)
    finally:
        started.wait()
        if thread.is_alive() and tasks:
            # The caller stopped early: cancel what still runs (the loop may just have closed).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(tasks[0].cancel)
        thread.join()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
