"""``client.tasks``: run, stream, submit and scatter tasks on workers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from agentfm._base_client import (
    RequestSpec,
    idle_bound,
    output_too_large_error,
    resolve_timeout,
)
from agentfm._constants import (
    ARTIFACT_POLL_INTERVAL,
    DEFAULT_ARTIFACT_TIMEOUT,
    DEFAULT_ARTIFACTS_DIR,
)
from agentfm._defaults import scatter_concurrency
from agentfm._fast_path import failure_text as _failure_text
from agentfm._fast_path import fast_attempt as _FastAttempt
from agentfm._fast_path import run_kwargs as _run_kwargs
from agentfm._fast_path import use_fast_path
from agentfm._routing import IN_FLIGHT, RejectionGate, plan_for
from agentfm._scatter import AttemptOutcome, Dispatch, ScatterScheduler, run_async, run_sync
from agentfm._streaming import (
    AsyncTaskStream,
    MarkerDecoder,
    StreamState,
    TaskStream,
    strip_failure_line,
)
from agentfm._trust import require_min_honesty, trusted_peer_ids
from agentfm._validation import (
    mint_task_id,
    pick_peer,
    require_non_negative_int,
    require_peer_ids,
    require_positive_int,
    require_prompt,
    require_task_id,
    require_timeout,
)
from agentfm.artifacts import ArtifactManager
from agentfm.exceptions import (
    AgentFMError,
    ArtifactError,
    GatewayProtocolError,
    InvalidRequestError,
    NoWorkerForModelError,
    TaskFailedError,
)
from agentfm.models import (
    AsyncTaskAck,
    PeerID,
    ScatterProgress,
    ScatterResult,
    TaskChunk,
    TaskResult,
    WorkerProfile,
)
from agentfm.resources.workers import match_workers

if TYPE_CHECKING:
    from pathlib import Path

    from agentfm._client import AgentFMClient, AsyncAgentFMClient

__all__ = ["AsyncTasks", "Tasks"]

log = logging.getLogger("agentfm.tasks")

Pick = Callable[[list[WorkerProfile]], list[WorkerProfile]]
ProgressCallback = Callable[[ScatterProgress], None]
_Fetch = Literal["ok", "absent", "no_route"]


class _ClientDefault:
    def __repr__(self) -> str:
        return "<client default>"


CLIENT_DEFAULT: Any = _ClientDefault()
"""``idle_timeout=`` left out: the client's ``idle_timeout`` applies."""


def _idle(client: Any, idle_timeout: float | None) -> float | None:
    if isinstance(idle_timeout, _ClientDefault):
        return client.idle_timeout
    return require_timeout(idle_timeout, name="idle_timeout")


def _execute_spec(
    client: Any,
    peer: str,
    prompt: str,
    task_id: str,
    timeout: float | None,
    feedback: str | None = None,
    feedback_rating: float | None = None,
    idle_timeout: float | None = None,
) -> RequestSpec:
    body: dict[str, Any] = {"worker_id": peer, "prompt": prompt, "task_id": task_id}
    # Passed as given: the gateway stores feedback_rating unvalidated (only a number).
    if feedback is not None:
        body["feedback"] = feedback
    if feedback_rating is not None:
        body["feedback_rating"] = feedback_rating
    return RequestSpec(
        "POST",
        "/api/execute",
        json=body,
        timeout=resolve_timeout(client.timeout, timeout, "long", idle_timeout),
        idle_timeout=idle_bound(timeout, idle_timeout),
    )


def _count_output(received: int, piece: bytes, limit: int | None) -> int:
    received += len(piece)
    if limit is not None and received > limit:
        raise output_too_large_error(limit)
    return received


def _async_spec(peer: str, prompt: str, webhook_url: str | None) -> RequestSpec:
    body = {"worker_id": peer, "prompt": prompt}
    if webhook_url:
        body["webhook_url"] = webhook_url
    return RequestSpec("POST", "/api/execute/async", json=body)


def _artifact_spec(client: Any, task_id: str) -> RequestSpec:
    return RequestSpec(
        "GET",
        f"/api/artifacts/{task_id}",
        idempotent=True,
        timeout=resolve_timeout(client.timeout, None, "long"),
    )


def _artifact_fetch_result(exc: AgentFMError) -> _Fetch:
    """Classify a failed ``GET /api/artifacts/{id}``: not there yet, or no such route."""
    if exc.code == "route_not_found" or exc.status == 405:
        return "no_route"
    if exc.status == 404:
        return "absent"
    raise exc


def _parse_ack(body: Any) -> AsyncTaskAck:
    try:
        return AsyncTaskAck.model_validate(body)
    except ValidationError:
        raise GatewayProtocolError(
            "unexpected /api/execute/async body", code="invalid_response"
        ) from None


def _check_prompts(prompts: Sequence[str]) -> None:
    if isinstance(prompts, str):
        raise InvalidRequestError(
            "prompts must be a sequence of strings, not one string", code="invalid_prompts"
        )
    for position, prompt in enumerate(prompts):
        require_prompt(prompt, name=f"prompts[{position}]")


def _check_scatter(
    prompts: Sequence[str],
    peer_ids: Sequence[str],
    max_concurrency: int | None,
    max_retries: int,
    timeout: float | None,
) -> list[str]:
    _check_prompts(prompts)
    if max_concurrency is not None:
        require_positive_int(max_concurrency, name="max_concurrency")
    require_non_negative_int(max_retries, name="max_retries")
    require_timeout(timeout)
    return require_peer_ids(peer_ids)


def _capacity(workers: Sequence[WorkerProfile]) -> dict[str, tuple[int, int]]:
    return {w.peer_id: (w.max_tasks, w.current_tasks) for w in workers}


def _choose_workers(
    matches: list[WorkerProfile], model: str, max_workers: int | None, pick: Pick | None
) -> list[str]:
    if pick is not None:
        matches = list(pick(matches))
    elif max_workers is not None:
        matches = matches[: require_positive_int(max_workers, name="max_workers")]
    if not matches:
        raise NoWorkerForModelError(
            f"no live worker advertises model={model!r}", code="model_not_found"
        )
    return [w.peer_id for w in matches]


def _started(exc: AgentFMError) -> AgentFMError:
    exc.task_started = True
    return exc


def _check_routed(
    worker_id: str | None,
    peer_id: str | None,
    prompt: str,
    timeout: float | None,
    max_retries: int,
) -> tuple[str, float | None]:
    if worker_id is not None or peer_id is not None:
        raise InvalidRequestError(
            "pass model= or worker_id=, not both", code="invalid_request_error"
        )
    require_non_negative_int(max_retries, name="max_retries")
    return require_prompt(prompt), require_timeout(timeout)


def _follow(
    state: StreamState,
    attempt: TaskStream[TaskChunk] | AsyncTaskStream[TaskChunk],
    tried: list[str],
) -> None:
    """Point a routed stream's ids at its current attempt."""
    state.peer_id = attempt.peer_id
    state.task_id = attempt.task_id
    state.peers_tried = list(tried)


def _failed(exc: AgentFMError, seen: list[str], state: StreamState) -> AgentFMError:
    """Mark a failure after the 200 and keep the text the task produced before it."""
    _started(exc)
    text = "".join(seen)
    if isinstance(exc, TaskFailedError):
        exc.text = strip_failure_line(text)
        exc.task_id = state.task_id
        exc.peer_id = state.peer_id
    elif text:
        exc.partial_text = text  # type: ignore[attr-defined]
    return exc


class Tasks:
    """Sync ``client.tasks``.

    Example:
        ```python
        result = client.tasks.run(worker_id=peer, prompt="summarise this")
        results = client.tasks.scatter(prompts, peer_ids=[p1, p2], max_concurrency=16)
        ```
    """

    def __init__(self, client: AgentFMClient) -> None:
        self._client = client

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
        if model is not None:
            prompt, timeout = _check_routed(worker_id, peer_id, prompt, timeout, max_retries)
            routed = StreamState(task_id=task_id)
            return TaskStream(
                lambda state: self._routed_chunks(
                    model,
                    prompt,
                    max_retries,
                    timeout,
                    state,
                    min_honesty,
                    {
                        "feedback": feedback,
                        "feedback_rating": feedback_rating,
                        "idle_timeout": idle_timeout,
                    },
                ),
                routed,
            )
        peer = pick_peer(worker_id, peer_id)
        prompt = require_prompt(prompt)
        task_id = require_task_id(task_id) if task_id is not None else mint_task_id()
        timeout = require_timeout(timeout)
        idle = _idle(self._client, idle_timeout)
        spec = _execute_spec(
            self._client,
            peer,
            prompt,
            task_id,
            timeout,
            feedback,
            feedback_rating,
            idle_timeout=idle,
        )
        return TaskStream(
            lambda state: self._chunks(spec, timeout, state),
            StreamState(task_id=task_id, peer_id=peer),
        )

    def _routed_chunks(
        self,
        model: str,
        prompt: str,
        max_retries: int,
        timeout: float | None,
        state: StreamState,
        min_honesty: float | None,
        extra: dict[str, Any],
    ) -> Iterator[TaskChunk]:
        plan = plan_for(
            model, self._client.workers.match(model, min_honesty=min_honesty), max_retries
        )
        last: AgentFMError | None = None
        first_task_id = state.task_id  # the caller's, for the first attempt only
        while (step := plan.next()) is not None:
            peer, delay = step
            if delay:
                time.sleep(delay)
            gate = RejectionGate()
            attempt = self.stream(
                worker_id=peer,
                prompt=prompt,
                timeout=timeout,
                task_id=first_task_id if len(plan.tried) == 1 else None,
                **extra,
            )
            _follow(state, attempt, plan.tried)
            try:
                with IN_FLIGHT.on(peer), attempt:
                    for chunk in attempt:
                        if chunk.kind == "text" and (text := gate.feed(chunk.text)):
                            yield TaskChunk.model_construct(text=text, kind="text")
            except AgentFMError as exc:
                if not plan.failed(peer, exc, emitted=gate.emitted):
                    raise
                last = exc
                continue
            if text := gate.flush():
                yield TaskChunk.model_construct(text=text, kind="text")
            state.files_incoming = attempt.files_incoming
            state.finished = True
            if attempt.files_incoming:
                yield TaskChunk(text="", kind="marker")
            return
        assert last is not None
        raise last

    def _chunks(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> Iterator[TaskChunk]:
        decoder = MarkerDecoder()
        limit, received = self._client.max_output_bytes, 0
        seen: list[str] = []  # references to the yielded strings, joined only on failure
        with self._client._open_stream(spec) as response:
            try:
                for piece in self._client._iter_body(response, timeout):
                    received = _count_output(received, piece, limit)
                    for text in decoder.feed(piece):
                        seen.append(text)
                        yield TaskChunk.model_construct(text=text, kind="text")
                for text in decoder.flush():
                    seen.append(text)
                    yield TaskChunk.model_construct(text=text, kind="text")
                decoder.raise_for_end()
            except AgentFMError as exc:
                raise _failed(exc, seen, state) from exc.__cause__
        state.files_incoming = decoder.files_incoming
        state.finished = True
        if decoder.files_incoming:
            yield TaskChunk(text="", kind="marker")

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
        if model is not None:
            prompt, timeout = _check_routed(worker_id, peer_id, prompt, timeout, max_retries)
            plan = plan_for(
                model, self._client.workers.match(model, min_honesty=min_honesty), max_retries
            )
            last: AgentFMError | None = None
            while (step := plan.next()) is not None:
                peer, delay = step
                if delay:
                    time.sleep(delay)
                try:
                    with IN_FLIGHT.on(peer):
                        result = self.run(
                            worker_id=peer,
                            prompt=prompt,
                            artifact_timeout=artifact_timeout,
                            task_id=task_id if len(plan.tried) == 1 else None,
                            timeout=timeout,
                            feedback=feedback,
                            feedback_rating=feedback_rating,
                            idle_timeout=idle_timeout,
                        )
                except AgentFMError as exc:
                    if not plan.failed(peer, exc):
                        raise
                    last = exc
                    continue
                result.peers_tried = list(plan.tried)
                return result
            assert last is not None
            raise last
        started = time.monotonic()
        artifact_timeout = (
            require_timeout(artifact_timeout, name="artifact_timeout") or DEFAULT_ARTIFACT_TIMEOUT
        )
        stream = self.stream(
            worker_id=worker_id,
            peer_id=peer_id,
            prompt=prompt,
            task_id=task_id,
            timeout=timeout,
            feedback=feedback,
            feedback_rating=feedback_rating,
            idle_timeout=idle_timeout,
        )
        with stream:
            text = "".join(chunk.text for chunk in stream)
        result = TaskResult(
            worker_id=PeerID(stream.peer_id),
            text=text,
            task_id=stream.task_id,
            files_incoming=stream.files_incoming,
            peers_tried=[stream.peer_id],
        )
        if stream.files_incoming:
            try:
                result.artifacts = self.collect_artifacts(stream.task_id, timeout=artifact_timeout)
            except ArtifactError as exc:
                exc.result = result
                raise _started(exc) from None
        result.duration_seconds = time.monotonic() - started
        return result

    def collect_artifacts(
        self, task_id: str, *, timeout: float = DEFAULT_ARTIFACT_TIMEOUT
    ) -> list[Path]:
        """Fetch and extract the files of a finished task (empty if none arrive in time).

        Looks for ``<artifacts_dir>/<task_id>.zip`` (a filesystem shared with the gateway)
        and asks ``GET /api/artifacts/{task_id}``, whichever answers first.
        """
        task_id = require_task_id(task_id)
        client = self._client
        manager = client.artifacts or ArtifactManager(DEFAULT_ARTIFACTS_DIR, DEFAULT_ARTIFACTS_DIR)
        deadline = time.monotonic() + timeout
        while True:
            if client.artifacts is not None and manager.task_zip(task_id).is_file():
                return self._extract(manager, manager.task_zip(task_id), task_id)
            if not client._artifact_route_missing:
                download = manager.extract_dir / f".{task_id}.zip.download"
                fetched = self._download(task_id, download)
                if fetched == "ok":
                    return self._extract(manager, download, task_id)
                if fetched == "no_route":
                    client._artifact_route_missing = True
            if client.artifacts is None and client._artifact_route_missing:
                log.warning(
                    "task %s produced files but this gateway has no artifact route; pass "
                    "artifacts_dir= pointing at the gateway's agentfm_artifacts folder",
                    task_id,
                )
                return []
            if time.monotonic() >= deadline:
                log.warning("files of task %s did not arrive within %ss", task_id, timeout)
                return []
            time.sleep(ARTIFACT_POLL_INTERVAL)

    @staticmethod
    def _extract(manager: ArtifactManager, zip_path: Path, task_id: str) -> list[Path]:
        try:
            return manager.extract(zip_path, task_id)
        finally:
            manager.cleanup(zip_path)

    def _download(self, task_id: str, target: Path) -> _Fetch:
        try:
            with self._client._open_stream(_artifact_spec(self._client, task_id)) as response:
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as sink:
                    for piece in self._client._iter_body(response, None):
                        sink.write(piece)
        except AgentFMError as exc:
            target.unlink(missing_ok=True)
            return _artifact_fetch_result(exc)
        return "ok"

    def submit_async(
        self,
        *,
        worker_id: str | None = None,
        prompt: str,
        webhook_url: str | None = None,
        peer_id: str | None = None,
    ) -> AsyncTaskAck:
        """Queue a task; the gateway POSTs ``webhook_url`` when done. Never retried once sent."""
        peer = pick_peer(worker_id, peer_id)
        body = self._client._request_json(_async_spec(peer, require_prompt(prompt), webhook_url))
        return _parse_ack(body)

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
        results: list[ScatterResult | None] = [None] * len(prompts)
        for result in self.scatter_iter(
            prompts,
            peer_ids=peer_ids,
            max_concurrency=max_concurrency,
            max_retries=max_retries,
            timeout=timeout,
            on_progress=on_progress,
            hedge=hedge,
            min_honesty=min_honesty,
            idle_timeout=idle_timeout,
        ):
            results[result.index] = result
        return [r for r in results if r is not None]

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
        peers = _check_scatter(prompts, peer_ids, max_concurrency, max_retries, timeout)
        return self._scatter_iter(
            prompts,
            peers,
            max_concurrency,
            max_retries,
            timeout,
            on_progress,
            hedge,
            require_min_honesty(min_honesty),
            idle=_idle(self._client, idle_timeout),
        )

    def _scatter_iter(
        self,
        prompts: Sequence[str],
        peers: list[str],
        max_concurrency: int | None,
        max_retries: int,
        timeout: float | None,
        on_progress: ProgressCallback | None,
        hedge: bool,
        min_honesty: float | None = None,
        *,
        idle: float | None = None,
    ) -> Iterator[ScatterResult]:
        if not prompts:
            return
        workers: list[WorkerProfile] | None
        try:
            workers = self._client.workers._fetch()
        except Exception as exc:
            # Best effort: a gateway without the route, or a user's HTTP mock that does
            # not define it (respx raises its own error), must not fail the scatter.
            log.debug("scatter without telemetry: %r", exc)
            workers = None
        peers = trusted_peer_ids(peers, workers, min_honesty)
        capacity = _capacity(workers or [])
        scheduler = ScatterScheduler(
            prompts,
            peers,
            max_concurrency=max_concurrency or scatter_concurrency(peers, workers),
            max_retries=max_retries,
            capacity=capacity,
            hedge=hedge,
        )
        if use_fast_path(self._client):
            fast = _FastAttempt(self._client, timeout, self._collect_in_thread, idle)
            yield from run_sync(
                scheduler, on_progress=on_progress, async_attempt=fast, on_close=fast.close
            )
        else:
            yield from run_sync(scheduler, lambda d: self._attempt(d, timeout, idle), on_progress)

    async def _collect_in_thread(self, task_id: str) -> list[Path]:
        return await asyncio.to_thread(self.collect_artifacts, task_id)

    def _attempt(
        self, dispatch: Dispatch, timeout: float | None, idle: float | None = None
    ) -> AttemptOutcome:
        started = time.monotonic()
        task_id = mint_task_id()
        try:
            result = self.run(**_run_kwargs(self, dispatch, task_id, timeout, idle))
        except AgentFMError as exc:
            return AttemptOutcome(
                text=_failure_text(exc, ""),
                task_id=task_id,
                error=exc,
                duration=time.monotonic() - started,
            )
        except Exception as exc:  # a bug must not lose the item: report it as its failure
            log.exception("scatter attempt failed unexpectedly")
            return AttemptOutcome(
                task_id=task_id,
                error=AgentFMError(f"unexpected error: {exc!r}"),
                duration=time.monotonic() - started,
            )
        return AttemptOutcome(
            text=result.text,
            artifacts=result.artifacts,
            task_id=getattr(result, "task_id", None) or task_id,
            duration=time.monotonic() - started,
        )

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
        model = require_prompt(model, name="model")
        require_non_negative_int(wait_for_workers, name="wait_for_workers")
        _check_prompts(prompts)
        min_honesty = require_min_honesty(scatter_opts.get("min_honesty"))
        deadline = time.monotonic() + poll_timeout
        while True:
            matches = match_workers(self._client.workers._fetch(), model, min_honesty=min_honesty)
            if len(matches) >= wait_for_workers or time.monotonic() >= deadline:
                break
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        peers = _choose_workers(matches, model, max_workers, pick)
        return self.scatter(prompts, peer_ids=peers, **scatter_opts)


class AsyncTasks:
    """Async ``client.tasks``: the methods of `Tasks`, awaited.

    ``stream`` and ``scatter_iter`` are not coroutines: use them with ``async for``.
    """

    def __init__(self, client: AsyncAgentFMClient) -> None:
        self._client = client

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
        if model is not None:
            prompt, timeout = _check_routed(worker_id, peer_id, prompt, timeout, max_retries)
            return AsyncTaskStream(
                lambda state: self._routed_chunks(
                    model,
                    prompt,
                    max_retries,
                    timeout,
                    state,
                    min_honesty,
                    {
                        "feedback": feedback,
                        "feedback_rating": feedback_rating,
                        "idle_timeout": idle_timeout,
                    },
                ),
                StreamState(task_id=task_id),
            )
        peer = pick_peer(worker_id, peer_id)
        prompt = require_prompt(prompt)
        task_id = require_task_id(task_id) if task_id is not None else mint_task_id()
        timeout = require_timeout(timeout)
        idle = _idle(self._client, idle_timeout)
        spec = _execute_spec(
            self._client,
            peer,
            prompt,
            task_id,
            timeout,
            feedback,
            feedback_rating,
            idle_timeout=idle,
        )
        return AsyncTaskStream(
            lambda state: self._chunks(spec, timeout, state),
            StreamState(task_id=task_id, peer_id=peer),
        )

    async def _chunks(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> AsyncIterator[TaskChunk]:
        decoder = MarkerDecoder()
        limit, received = self._client.max_output_bytes, 0
        seen: list[str] = []  # references to the yielded strings, joined only on failure
        async with self._client._open_stream(spec) as response:
            try:
                async for piece in self._client._iter_body(response, timeout):
                    received = _count_output(received, piece, limit)
                    for text in decoder.feed(piece):
                        seen.append(text)
                        yield TaskChunk.model_construct(text=text, kind="text")
                for text in decoder.flush():
                    seen.append(text)
                    yield TaskChunk.model_construct(text=text, kind="text")
                decoder.raise_for_end()
            except AgentFMError as exc:
                raise _failed(exc, seen, state) from exc.__cause__
        state.files_incoming = decoder.files_incoming
        state.finished = True
        if decoder.files_incoming:
            yield TaskChunk(text="", kind="marker")

    async def _routed_chunks(
        self,
        model: str,
        prompt: str,
        max_retries: int,
        timeout: float | None,
        state: StreamState,
        min_honesty: float | None,
        extra: dict[str, Any],
    ) -> AsyncIterator[TaskChunk]:
        plan = plan_for(
            model, await self._client.workers.match(model, min_honesty=min_honesty), max_retries
        )
        last: AgentFMError | None = None
        first_task_id = state.task_id  # the caller's, for the first attempt only
        while (step := plan.next()) is not None:
            peer, delay = step
            if delay:
                await asyncio.sleep(delay)
            gate = RejectionGate()
            attempt = self.stream(
                worker_id=peer,
                prompt=prompt,
                timeout=timeout,
                task_id=first_task_id if len(plan.tried) == 1 else None,
                **extra,
            )
            _follow(state, attempt, plan.tried)
            try:
                with IN_FLIGHT.on(peer):
                    async with attempt:
                        async for chunk in attempt:
                            if chunk.kind == "text" and (text := gate.feed(chunk.text)):
                                yield TaskChunk.model_construct(text=text, kind="text")
            except AgentFMError as exc:
                if not plan.failed(peer, exc, emitted=gate.emitted):
                    raise
                last = exc
                continue
            if text := gate.flush():
                yield TaskChunk.model_construct(text=text, kind="text")
            state.files_incoming = attempt.files_incoming
            state.finished = True
            if attempt.files_incoming:
                yield TaskChunk(text="", kind="marker")
            return
        assert last is not None
        raise last

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
        if model is not None:
            prompt, timeout = _check_routed(worker_id, peer_id, prompt, timeout, max_retries)
            plan = plan_for(
                model, await self._client.workers.match(model, min_honesty=min_honesty), max_retries
            )
            last: AgentFMError | None = None
            while (step := plan.next()) is not None:
                peer, delay = step
                if delay:
                    await asyncio.sleep(delay)
                try:
                    with IN_FLIGHT.on(peer):
                        result = await self.run(
                            worker_id=peer,
                            prompt=prompt,
                            artifact_timeout=artifact_timeout,
                            task_id=task_id if len(plan.tried) == 1 else None,
                            timeout=timeout,
                            feedback=feedback,
                            feedback_rating=feedback_rating,
                            idle_timeout=idle_timeout,
                        )
                except AgentFMError as exc:
                    if not plan.failed(peer, exc):
                        raise
                    last = exc
                    continue
                result.peers_tried = list(plan.tried)
                return result
            assert last is not None
            raise last
        started = time.monotonic()
        artifact_timeout = (
            require_timeout(artifact_timeout, name="artifact_timeout") or DEFAULT_ARTIFACT_TIMEOUT
        )
        stream = self.stream(
            worker_id=worker_id,
            peer_id=peer_id,
            prompt=prompt,
            task_id=task_id,
            timeout=timeout,
            feedback=feedback,
            feedback_rating=feedback_rating,
            idle_timeout=idle_timeout,
        )
        async with stream:
            text = "".join([chunk.text async for chunk in stream])
        result = TaskResult(
            worker_id=PeerID(stream.peer_id),
            text=text,
            task_id=stream.task_id,
            files_incoming=stream.files_incoming,
            peers_tried=[stream.peer_id],
        )
        if stream.files_incoming:
            try:
                result.artifacts = await self.collect_artifacts(
                    stream.task_id, timeout=artifact_timeout
                )
            except ArtifactError as exc:
                exc.result = result
                raise _started(exc) from None
        result.duration_seconds = time.monotonic() - started
        return result

    async def collect_artifacts(
        self, task_id: str, *, timeout: float = DEFAULT_ARTIFACT_TIMEOUT
    ) -> list[Path]:
        """Fetch and extract the files of a finished task (see `Tasks.collect_artifacts`)."""
        task_id = require_task_id(task_id)
        client = self._client
        manager = client.artifacts or ArtifactManager(DEFAULT_ARTIFACTS_DIR, DEFAULT_ARTIFACTS_DIR)
        deadline = time.monotonic() + timeout
        while True:
            if client.artifacts is not None and manager.task_zip(task_id).is_file():
                return await self._extract(manager, manager.task_zip(task_id), task_id)
            if not client._artifact_route_missing:
                download = manager.extract_dir / f".{task_id}.zip.download"
                fetched = await self._download(task_id, download)
                if fetched == "ok":
                    return await self._extract(manager, download, task_id)
                if fetched == "no_route":
                    client._artifact_route_missing = True
            if client.artifacts is None and client._artifact_route_missing:
                log.warning(
                    "task %s produced files but this gateway has no artifact route; pass "
                    "artifacts_dir= pointing at the gateway's agentfm_artifacts folder",
                    task_id,
                )
                return []
            if time.monotonic() >= deadline:
                log.warning("files of task %s did not arrive within %ss", task_id, timeout)
                return []
            await asyncio.sleep(ARTIFACT_POLL_INTERVAL)

    @staticmethod
    async def _extract(manager: ArtifactManager, zip_path: Path, task_id: str) -> list[Path]:
        try:
            return await asyncio.to_thread(manager.extract, zip_path, task_id)
        finally:
            manager.cleanup(zip_path)

    async def _download(self, task_id: str, target: Path) -> _Fetch:
        try:
            async with self._client._open_stream(_artifact_spec(self._client, task_id)) as response:
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as sink:  # noqa: ASYNC230 - local disk, small writes
                    async for piece in self._client._iter_body(response, None):
                        sink.write(piece)
        except AgentFMError as exc:
            await asyncio.to_thread(target.unlink, missing_ok=True)
            return _artifact_fetch_result(exc)
        return "ok"

    async def submit_async(
        self,
        *,
        worker_id: str | None = None,
        prompt: str,
        webhook_url: str | None = None,
        peer_id: str | None = None,
    ) -> AsyncTaskAck:
        """Queue a task; the gateway POSTs ``webhook_url`` when done. Never retried once sent."""
        peer = pick_peer(worker_id, peer_id)
        body = await self._client._request_json(
            _async_spec(peer, require_prompt(prompt), webhook_url)
        )
        return _parse_ack(body)

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
        results: list[ScatterResult | None] = [None] * len(prompts)
        async for result in self.scatter_iter(
            prompts,
            peer_ids=peer_ids,
            max_concurrency=max_concurrency,
            max_retries=max_retries,
            timeout=timeout,
            on_progress=on_progress,
            hedge=hedge,
            min_honesty=min_honesty,
            idle_timeout=idle_timeout,
        ):
            results[result.index] = result
        return [r for r in results if r is not None]

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
        peers = _check_scatter(prompts, peer_ids, max_concurrency, max_retries, timeout)
        return self._scatter_iter(
            prompts,
            peers,
            max_concurrency,
            max_retries,
            timeout,
            on_progress,
            hedge,
            require_min_honesty(min_honesty),
            idle=_idle(self._client, idle_timeout),
        )

    async def _scatter_iter(
        self,
        prompts: Sequence[str],
        peers: list[str],
        max_concurrency: int | None,
        max_retries: int,
        timeout: float | None,
        on_progress: ProgressCallback | None,
        hedge: bool,
        min_honesty: float | None = None,
        *,
        idle: float | None = None,
    ) -> AsyncIterator[ScatterResult]:
        if not prompts:
            return
        workers: list[WorkerProfile] | None
        try:
            workers = await self._client.workers._fetch()
        except Exception as exc:
            # Best effort: a gateway without the route, or a user's HTTP mock that does
            # not define it (respx raises its own error), must not fail the scatter.
            log.debug("scatter without telemetry: %r", exc)
            workers = None
        peers = trusted_peer_ids(peers, workers, min_honesty)
        capacity = _capacity(workers or [])
        scheduler = ScatterScheduler(
            prompts,
            peers,
            max_concurrency=max_concurrency or scatter_concurrency(peers, workers),
            max_retries=max_retries,
            capacity=capacity,
            hedge=hedge,
        )
        if use_fast_path(self._client):
            fast = _FastAttempt(self._client, timeout, self.collect_artifacts, idle)
            async for result in run_async(scheduler, fast, on_progress, on_close=fast.close):
                yield result
        else:
            attempt = lambda d: self._attempt(d, timeout, idle)  # noqa: E731
            async for result in run_async(scheduler, attempt, on_progress):
                yield result

    async def _attempt(
        self, dispatch: Dispatch, timeout: float | None, idle: float | None = None
    ) -> AttemptOutcome:
        started = time.monotonic()
        task_id = mint_task_id()
        try:
            result = await self.run(**_run_kwargs(self, dispatch, task_id, timeout, idle))
        except AgentFMError as exc:
            return AttemptOutcome(
                text=_failure_text(exc, ""),
                task_id=task_id,
                error=exc,
                duration=time.monotonic() - started,
            )
        except Exception as exc:  # a bug must not lose the item: report it as its failure
            log.exception("scatter attempt failed unexpectedly")
            return AttemptOutcome(
                task_id=task_id,
                error=AgentFMError(f"unexpected error: {exc!r}"),
                duration=time.monotonic() - started,
            )
        return AttemptOutcome(
            text=result.text,
            artifacts=result.artifacts,
            task_id=getattr(result, "task_id", None) or task_id,
            duration=time.monotonic() - started,
        )

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
        model = require_prompt(model, name="model")
        require_non_negative_int(wait_for_workers, name="wait_for_workers")
        _check_prompts(prompts)
        min_honesty = require_min_honesty(scatter_opts.get("min_honesty"))
        deadline = time.monotonic() + poll_timeout
        while True:
            matches = match_workers(
                await self._client.workers._fetch(), model, min_honesty=min_honesty
            )
            if len(matches) >= wait_for_workers or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        peers = _choose_workers(matches, model, max_workers, pick)
        return await self.scatter(prompts, peer_ids=peers, **scatter_opts)


# The SDK's own ``run`` methods: a scatter whose ``tasks.run`` was replaced (a test double)
# sends its attempts through the replacement.
_OWN_RUN: dict[str, Any] = {"Tasks": Tasks.run, "AsyncTasks": AsyncTasks.run}
