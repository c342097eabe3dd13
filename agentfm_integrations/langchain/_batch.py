"""Scatter jobs behind ``batch``: submit once, then let core run one LLM run per input.

A batch override submits one SDK scatter for every input (the scatter itself moves a failed
item to an untried peer) and tags each input's config with the job id and the item's index
(``metadata``). It then delegates to core's ``batch``, so callbacks, tracing,
``return_exceptions``, ``max_concurrency``, caching and retries behave exactly as for any
chat model; ``_generate`` recognises a tagged run and waits for its item instead of sending
a request of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from typing import TYPE_CHECKING, Any

import agentfm
from agentfm_integrations._tasks import require_peers

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.runnables import RunnableConfig

JOB_KEY = "agentfm_scatter_job"
INDEX_KEY = "agentfm_scatter_index"

_JOBS: dict[str, ScatterJob] = {}
_JOBS_LOCK = threading.Lock()


class ScatterIncompleteError(agentfm.AgentFMError):
    """The scatter ended without a result for this item (it was cancelled)."""


class ScatterJob:
    """One scatter's per-item results, shared by the threads or tasks that wait on them."""

    def __init__(self, owner: object, prompts: Sequence[str]) -> None:
        self.id = uuid.uuid4().hex
        self.owner = owner
        self.prompts = list(prompts)
        self._futures: list[concurrent.futures.Future[agentfm.ScatterResult]] = [
            concurrent.futures.Future() for _ in self.prompts
        ]
        self._cancelled = threading.Event()
        self._task: asyncio.Task[None] | None = None

    # registry ------------------------------------------------------------------------

    def __enter__(self) -> ScatterJob:
        with _JOBS_LOCK:
            _JOBS[self.id] = self
        return self

    def __exit__(self, *exc: object) -> None:
        with _JOBS_LOCK:
            _JOBS.pop(self.id, None)
        self._cancelled.set()

    def tag(self, configs: Sequence[RunnableConfig]) -> list[RunnableConfig]:
        """Return copies of the per-input configs that carry this job's id and index."""
        tagged: list[RunnableConfig] = []
        for index, config in enumerate(configs):
            metadata = {**(config.get("metadata") or {}), JOB_KEY: self.id, INDEX_KEY: index}
            tagged.append({**config, "metadata": metadata})
        return tagged

    # results -------------------------------------------------------------------------

    def deliver(self, result: agentfm.ScatterResult) -> None:
        """Hand one scatter result to whoever waits for its index."""
        future = self._futures[result.index]
        if not future.done():
            future.set_result(result)

    def fail_pending(self, exc: BaseException) -> None:
        """Fail every item that has no result yet (the whole scatter broke or ended)."""
        for future in self._futures:
            if not future.done():
                future.set_exception(exc)

    @property
    def cancelled(self) -> bool:
        """Whether the batch that owns this job has returned."""
        return self._cancelled.is_set()

    def result(self, index: int) -> agentfm.ScatterResult:
        """Block until item ``index`` has its result."""
        return self._futures[index].result()

    async def aresult(self, index: int) -> agentfm.ScatterResult:
        """Wait for item ``index`` without blocking the event loop."""
        return await asyncio.wrap_future(self._futures[index])

    # drivers -------------------------------------------------------------------------

    def _scatter_args(
        self, workers: Sequence[agentfm.WorkerProfile], route: dict[str, Any]
    ) -> dict[str, Any]:
        """``scatter_iter`` keywords: the routing ones, over the peers matching the model."""
        scatter = {k: v for k, v in route.items() if k != "model"}
        return {**scatter, "peer_ids": require_peers(route["model"], workers)}

    def run_sync(self, client: agentfm.AgentFMClient, **route: Any) -> threading.Thread:
        """Drive the scatter on a background thread; results land in the futures.

        ``route``: ``model``, ``max_concurrency``, ``max_retries``, ``timeout``,
        ``min_honesty``.
        """

        def drive() -> None:
            try:
                workers = client.workers.match(route["model"], min_honesty=route["min_honesty"])
                for result in client.tasks.scatter_iter(
                    self.prompts, **self._scatter_args(workers, route)
                ):
                    self.deliver(result)
                    if self.cancelled:
                        break  # the abandoned iterator cancels the attempts still running
            except BaseException as exc:  # every waiting item must learn about it
                self.fail_pending(exc)
            finally:
                self.fail_pending(ScatterIncompleteError("scatter ended before this item ran"))

        thread = threading.Thread(target=drive, name=f"agentfm-scatter-{self.id[:8]}", daemon=True)
        thread.start()
        return thread

    def start_async(self, client: agentfm.AsyncAgentFMClient, **route: Any) -> None:
        """Drive the scatter as a task on the running loop (``route`` as for `run_sync`)."""

        async def drive() -> None:
            try:
                match = client.workers.match
                workers = await match(route["model"], min_honesty=route["min_honesty"])
                async for result in client.tasks.scatter_iter(
                    self.prompts, **self._scatter_args(workers, route)
                ):
                    self.deliver(result)
            except BaseException as exc:
                self.fail_pending(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finally:
                self.fail_pending(ScatterIncompleteError("scatter ended before this item ran"))

        self._task = asyncio.get_running_loop().create_task(drive())

    async def astop(self) -> None:
        """Cancel the async driver if it still runs, and wait for it to unwind."""
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            task.cancel()
        # gather() returns the driver's own CancelledError instead of raising it, while a
        # cancellation of the caller still propagates.
        await asyncio.gather(task, return_exceptions=True)


def lookup(
    owner: object,
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> tuple[ScatterJob, int] | None:
    """Find the scatter item a model run stands for, if it is part of one of our batches."""
    if run_manager is None:
        return None
    metadata: dict[str, Any] = run_manager.metadata or {}
    job_id = metadata.get(JOB_KEY)
    if job_id is None:
        return None
    with _JOBS_LOCK:
        job = _JOBS.get(job_id)
    if job is None or job.owner is not owner:
        return None
    index = metadata.get(INDEX_KEY)
    if not isinstance(index, int) or not 0 <= index < len(job.prompts):
        return None
    return job, index
