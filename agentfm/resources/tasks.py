"""``client.tasks``: run, stream, submit and scatter tasks on workers.

`Tasks` and `AsyncTasks` are the public methods over the two drivers of
`agentfm.resources._task_drivers`: each method hands its arguments to the flow
(`agentfm._task_flows`, `agentfm._artifact_flow`, `agentfm.resources._task_scatter`) that
checks them and decides, and its driver performs that flow's I/O. So the sync and the
async client make the same decisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentfm._constants import DEFAULT_ARTIFACT_TIMEOUT
from agentfm._streaming import AsyncTaskStream, TaskStream
from agentfm._task_flows import CLIENT_DEFAULT, arguments, run_call, submit_flow
from agentfm.resources._task_drivers import AsyncTaskDriver, SyncTaskDriver
from agentfm.resources._task_scatter import in_input_order, model_peers_flow

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence
    from pathlib import Path

    from agentfm.models import AsyncTaskAck, ScatterResult, TaskChunk, TaskResult
    from agentfm.resources._task_scatter import Pick, ProgressCallback

__all__ = ["AsyncTasks", "Tasks"]


class Tasks(SyncTaskDriver):
    """Sync ``client.tasks``.

    Example:
        ```python
        result = client.tasks.run(worker_id=peer, prompt="summarise this")
        results = client.tasks.scatter(prompts, peer_ids=[p1, p2], max_concurrency=16)
        ```
    """

    def stream(
        self,
        *,
        worker_id: str | None = None,
        prompt: str,
        task_id: str | None = None,
        timeout: float | None = None,
        peer_id: str | None = None,
        feedback: str | None = None,
        feedback_rating: float | None = None,
        idle_timeout: float | None = CLIENT_DEFAULT,
        model: str | None = None,
        max_retries: int = 2,
        min_honesty: float | None = None,
    ) -> TaskStream[TaskChunk]:
        """Stream a task's output as it is produced (the request is sent on first iteration).

        Text chunks come as the worker writes them; a final ``kind="marker"`` chunk means
        files are coming. Iteration raises `IncompleteStreamError` if the stream ends
        without its terminal marker and `WorkerRejectedError` if the worker refused.

        Args:
            worker_id: The worker's peer id (``peer_id=`` is an alias).
            prompt: The task prompt.
            task_id: Task id to use (default: a fresh ``task_…`` id, see ``stream.task_id``).
            timeout: Seconds the whole task may take.
            feedback: A comment about the worker; after a clean end the gateway appends
                it to its ledger (silently skipped when it has none).
            feedback_rating: With ``feedback``, also an ``honesty`` rating (-1..1).
            idle_timeout: Seconds the stream may stay silent (default: the client's
                ``idle_timeout``, 600; None: unbounded); `AgentFMTimeoutError` names it.
            model: Instead of ``worker_id``: route by peer id, agent name or engine, to the
                least-loaded matching worker, failing over to an untried one while no
                text has reached the caller (same failover rule as scatter).
            max_retries: With ``model``: failovers after the first attempt.
            min_honesty: With ``model``: only peers whose honesty score is at least this.
        """
        return TaskStream(*self._stream_source(**arguments(locals())))

    def run(
        self,
        *,
        worker_id: str | None = None,
        prompt: str,
        artifact_timeout: float = DEFAULT_ARTIFACT_TIMEOUT,
        task_id: str | None = None,
        timeout: float | None = None,
        peer_id: str | None = None,
        feedback: str | None = None,
        feedback_rating: float | None = None,
        idle_timeout: float | None = CLIENT_DEFAULT,
        model: str | None = None,
        max_retries: int = 2,
        min_honesty: float | None = None,
    ) -> TaskResult:
        """Run a task to completion and collect its files.

        Artifacts are fetched only when the worker announced them, and extracted into
        ``<artifacts_dir>/<task_id>/``.

        With ``model=`` instead of ``worker_id``, the task goes to the least-loaded worker
        matching that peer id, agent name or engine, and a failed attempt moves to an
        untried one, up to ``max_retries`` times, under the same rule as scatter
        (`agentfm._scatter.is_redispatchable`): a broken stream, a rejection or a crashed
        agent fail over; a bad request or key, ``rate_limited`` and an artifact error after
        a completed task do not. ``result.peers_tried`` lists the peers tried.

        Raises:
            IncompleteStreamError: The task stream ended before the task finished.
            WorkerRejectedError: The worker refused the task.
            AgentExitError: The agent exited non-zero or was killed; ``exc.text`` keeps its
                output and ``exc.exit_detail`` the worker's reason.
            TaskStartError: The worker could not start the agent.
            ArtifactError: The files were announced but unsafe/corrupt; ``exc.result`` keeps
                the text.
            NoWorkerForModelError: ``model`` matches no live worker.
        """
        return self._run_flow(run_call(**arguments(locals())))

    def collect_artifacts(
        self, task_id: str, *, timeout: float = DEFAULT_ARTIFACT_TIMEOUT
    ) -> list[Path]:
        """Fetch and extract the files of a finished task (empty if none arrive in time).

        Looks for ``<artifacts_dir>/<task_id>.zip`` (a filesystem shared with the gateway)
        and asks ``GET /api/artifacts/{task_id}``, whichever answers first.
        """
        return self._run_flow(self._collect_flow(task_id, timeout))

    def submit_async(
        self,
        *,
        worker_id: str | None = None,
        prompt: str,
        webhook_url: str | None = None,
        peer_id: str | None = None,
    ) -> AsyncTaskAck:
        """Queue a task; the gateway POSTs ``webhook_url`` when done. Never retried once sent."""
        return self._run_flow(submit_flow(worker_id, peer_id, prompt, webhook_url))

    def scatter(
        self,
        prompts: Sequence[str],
        *,
        peer_ids: Sequence[str],
        max_concurrency: int | None = 8,
        max_retries: int = 2,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        hedge: bool = False,
        min_honesty: float | None = None,
        idle_timeout: float | None = CLIENT_DEFAULT,
    ) -> list[ScatterResult]:
        """Run every prompt on the given peers; one result per prompt, in input order.

        Work goes to the peers with free capacity that are expected to finish first; a
        failed attempt (broken stream, rejection, crashed agent, unreachable peer) moves to
        a peer the prompt has not tried, and a peer that keeps failing is benched for a
        while. A peer the gateway does not know (404) is not asked again.

        Overload: a 503 ``mesh_overloaded`` (or a 503 with ``Retry-After``) pauses the
        batch for the ``Retry-After`` (at most 120 s; backoff without the header) and
        requeues the prompt. Each such answer counts as one of the prompt's
        ``max_retries + 1`` attempts and shows in ``ScatterResult.attempts``, so with
        ``max_retries=1`` a prompt is sent at most twice. A ``429 rate_limited``, a
        rejected key, or a gateway that keeps refusing connections for 5 s ends the batch:
        every prompt not yet sent gets a failed result with that error at once (shorter
        outages, such as a restart, only pause the batch).

        Args:
            prompts: The prompts.
            peer_ids: Candidate workers (any non-empty strings; the gateway judges them).
            max_concurrency: Tasks in flight at once; None sizes the batch by the task
                slots the peers advertise (`agentfm._defaults.scatter_concurrency`), as
                the framework integrations do.
            max_retries: Extra attempts per prompt (overload waits included).
            timeout: Seconds one attempt may take.
            idle_timeout: Seconds an attempt's stream may stay silent (default: the
                client's ``idle_timeout``; None: unbounded).
            on_progress: Called with a `ScatterProgress` after every attempt.
            min_honesty: Skip peers whose ``honesty_score`` is below it (peers with
                ``dispatch_allowed`` false are always skipped); `UntrustedPeersError` when
                no candidate is left.
            hedge: Once no new prompt is waiting, duplicate an attempt that runs far past
                the batch's typical latency on another peer with room; the first success
                wins and the other attempt is cancelled. Off by default, because an agent
                with side effects would run twice.
        """
        return in_input_order(self.scatter_iter(**arguments(locals())), len(prompts))

    def scatter_iter(
        self,
        prompts: Sequence[str],
        *,
        peer_ids: Sequence[str],
        max_concurrency: int | None = 8,
        max_retries: int = 2,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        hedge: bool = False,
        min_honesty: float | None = None,
        idle_timeout: float | None = CLIENT_DEFAULT,
    ) -> Iterator[ScatterResult]:
        """Like `scatter`, but yield each result as soon as it is final (completion order)."""
        return self._scatter_iter(self._scatter_call(**arguments(locals())))

    def scatter_by_model(
        self,
        prompts: Sequence[str],
        *,
        model: str,
        max_workers: int | None = None,
        pick: Pick | None = None,
        wait_for_workers: int = 0,
        poll_timeout: float = 15.0,
        **scatter_opts: Any,
    ) -> list[ScatterResult]:
        """Scatter over the workers that match ``model`` (peer id, agent name or engine).

        Raises:
            NoWorkerForModelError: No live worker matches (a `ModelNotFoundError` and a
                `WorkerNotFoundError`).
        """
        peers = self._run_flow(model_peers_flow(**arguments(locals())))
        return self.scatter(prompts, peer_ids=peers, **scatter_opts)


class AsyncTasks(AsyncTaskDriver):
    """Async ``client.tasks``: the methods of `Tasks`, awaited.

    ``stream`` and ``scatter_iter`` are not coroutines: use them with ``async for``.
    """

    def stream(
        self,
        *,
        worker_id: str | None = None,
        prompt: str,
        task_id: str | None = None,
        timeout: float | None = None,
        peer_id: str | None = None,
        feedback: str | None = None,
        feedback_rating: float | None = None,
        idle_timeout: float | None = CLIENT_DEFAULT,
        model: str | None = None,
        max_retries: int = 2,
        min_honesty: float | None = None,
    ) -> AsyncTaskStream[TaskChunk]:
        """Stream a task's output: ``async for chunk in aclient.tasks.stream(...)``.

        ``model=`` routes by name with failover, as in `Tasks.stream`.
        """
        return AsyncTaskStream(*self._stream_source(**arguments(locals())))

    async def run(
        self,
        *,
        worker_id: str | None = None,
        prompt: str,
        artifact_timeout: float = DEFAULT_ARTIFACT_TIMEOUT,
        task_id: str | None = None,
        timeout: float | None = None,
        peer_id: str | None = None,
        feedback: str | None = None,
        feedback_rating: float | None = None,
        idle_timeout: float | None = CLIENT_DEFAULT,
        model: str | None = None,
        max_retries: int = 2,
        min_honesty: float | None = None,
    ) -> TaskResult:
        """Run a task to completion and collect its files (see `Tasks.run`, ``model=`` too)."""
        return await self._run_flow(run_call(**arguments(locals())))

    async def collect_artifacts(
        self, task_id: str, *, timeout: float = DEFAULT_ARTIFACT_TIMEOUT
    ) -> list[Path]:
        """Fetch and extract the files of a finished task (see `Tasks.collect_artifacts`)."""
        return await self._run_flow(self._collect_flow(task_id, timeout))

    async def submit_async(
        self,
        *,
        worker_id: str | None = None,
        prompt: str,
        webhook_url: str | None = None,
        peer_id: str | None = None,
    ) -> AsyncTaskAck:
        """Queue a task; the gateway POSTs ``webhook_url`` when done. Never retried once sent."""
        return await self._run_flow(submit_flow(worker_id, peer_id, prompt, webhook_url))

    async def scatter(
        self,
        prompts: Sequence[str],
        *,
        peer_ids: Sequence[str],
        max_concurrency: int | None = 8,
        max_retries: int = 2,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        hedge: bool = False,
        min_honesty: float | None = None,
        idle_timeout: float | None = CLIENT_DEFAULT,
    ) -> list[ScatterResult]:
        """Run every prompt on the given peers; one result per prompt, in input order.

        Same scheduling and options as `Tasks.scatter` (including ``hedge``).
        """
        results = self.scatter_iter(**arguments(locals()))
        return in_input_order([result async for result in results], len(prompts))

    def scatter_iter(
        self,
        prompts: Sequence[str],
        *,
        peer_ids: Sequence[str],
        max_concurrency: int | None = 8,
        max_retries: int = 2,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        hedge: bool = False,
        min_honesty: float | None = None,
        idle_timeout: float | None = CLIENT_DEFAULT,
    ) -> AsyncIterator[ScatterResult]:
        """Yield each result as soon as it is final (``async for r in ...scatter_iter(...)``)."""
        return self._scatter_iter(self._scatter_call(**arguments(locals())))

    async def scatter_by_model(
        self,
        prompts: Sequence[str],
        *,
        model: str,
        max_workers: int | None = None,
        pick: Pick | None = None,
        wait_for_workers: int = 0,
        poll_timeout: float = 15.0,
        **scatter_opts: Any,
    ) -> list[ScatterResult]:
        """Scatter over the workers that match ``model`` (see `Tasks.scatter_by_model`)."""
        peers = await self._run_flow(model_peers_flow(**arguments(locals())))
        return await self.scatter(prompts, peer_ids=peers, **scatter_opts)


# A scatter whose ``tasks.run`` was replaced (a test double) sends its attempts through the
# replacement; these are the SDK's own.
