"""The two drivers of ``client.tasks``: perform its flows' steps, sync and async.

Every decision of a task call lives in its flow (`agentfm._task_flows`,
`agentfm._artifact_flow`, `agentfm.resources._task_scatter`); a driver only performs the
steps (`agentfm._flow`) and hands their outcome back. `Tasks` and `AsyncTasks` are these
drivers plus their public methods.

These classes are the only code of ``client.tasks`` that calls its client, through the
members `SyncTaskClient` and `AsyncTaskClient` list.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from agentfm._artifact_flow import collect_flow, extract_zip
from agentfm._base_client import RequestSpec
from agentfm._decoders import BytesDecoder
from agentfm._fast_path import ScatterClient, fast_attempt, run_kwargs, use_fast_path
from agentfm._flow import Emit, Pump, Sleep
from agentfm._scatter import run_async, run_sync
from agentfm._streaming import StreamState
from agentfm._task_flows import TaskBody, check_routed, direct_stream, routed_stream_flow
from agentfm._task_steps import (
    Collect,
    Download,
    Extract,
    FetchWorkers,
    MatchWorkers,
    NoArtifactRoute,
    OpenTask,
    Pull,
    ReadTask,
    RunTask,
    TaskFlow,
    TaskStep,
)
from agentfm._validation import mint_task_id
from agentfm.exceptions import AgentFMError
from agentfm.resources._task_scatter import ScatterCall, attempt_flow, scatter_call, scheduler_flow

if TYPE_CHECKING:
    import builtins
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from pathlib import Path

    from agentfm._decoders import Decoder
    from agentfm._scatter import AttemptOutcome, Dispatch
    from agentfm._streaming import AsyncTaskStream, TaskStream
    from agentfm.artifacts import ArtifactManager
    from agentfm.models import ScatterResult, TaskChunk, TaskResult, WorkerProfile

__all__ = ["AsyncTaskClient", "AsyncTaskDriver", "SyncTaskClient", "SyncTaskDriver"]

R = TypeVar("R")
T = TypeVar("T")
X = TypeVar("X")


class _ClientConfig(ScatterClient, Protocol):
    @property
    def idle_timeout(self) -> float | None: ...
    @property
    def artifacts(self) -> ArtifactManager | None: ...

    _artifact_route_missing: bool


class _SyncWorkers(Protocol):
    def list(self) -> builtins.list[WorkerProfile]: ...
    def match(
        self, model: str, *, min_honesty: float | None = None
    ) -> builtins.list[WorkerProfile]: ...


class _AsyncWorkers(Protocol):
    async def list(self) -> builtins.list[WorkerProfile]: ...
    async def match(
        self, model: str, *, min_honesty: float | None = None
    ) -> builtins.list[WorkerProfile]: ...


class SyncTaskClient(_ClientConfig, Protocol):
    """What ``client.tasks`` uses of the sync client."""

    @property
    def workers(self) -> _SyncWorkers: ...
    def request_json(self, spec: RequestSpec) -> Any: ...
    def stream(
        self,
        spec: RequestSpec,
        decoder: Decoder[X],
        parse: Callable[[X], T],
        *,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
        on_end: Callable[[], None] | None = None,
        on_error: Callable[[AgentFMError], AgentFMError] | None = None,
    ) -> Iterator[T]: ...


class AsyncTaskClient(_ClientConfig, Protocol):
    """What ``client.tasks`` uses of the async client."""

    @property
    def workers(self) -> _AsyncWorkers: ...
    async def request_json(self, spec: RequestSpec) -> Any: ...
    def stream(
        self,
        spec: RequestSpec,
        decoder: Decoder[X],
        parse: Callable[[X], T],
        *,
        timeout: float | None = None,
        max_output_bytes: int | None = None,
        on_end: Callable[[], None] | None = None,
        on_error: Callable[[AgentFMError], AgentFMError] | None = None,
    ) -> AsyncIterator[T]: ...


def _as_is(exc: AgentFMError) -> AgentFMError:
    """An artifact download's failure is raised as it is (no task started, no text kept)."""
    return exc


def _stream_options(body: TaskBody, timeout: float | None, client: _ClientConfig) -> dict[str, Any]:
    """How the client's ``stream`` driver reads one task body."""
    return {
        "timeout": timeout,
        "max_output_bytes": client.max_output_bytes,
        "on_end": body.decoder.raise_for_end,
        "on_error": body.failed,
    }


class _TaskDriver:
    """What both drivers share: the flow or the stream source of a call's arguments."""

    _client: _ClientConfig
    _drive: Callable[[TaskFlow[None]], Any]
    _chunks: Callable[[RequestSpec, float | None, StreamState], Any]

    def _stream_source(
        self,
        *,
        worker_id: str | None,
        prompt: str,
        task_id: str | None,
        timeout: float | None,
        peer_id: str | None,
        feedback: str | None,
        feedback_rating: float | None,
        idle_timeout: float | None,
        model: str | None,
        max_retries: int,
        min_honesty: float | None,
    ) -> tuple[Callable[[StreamState], Any], StreamState]:
        """The source and the state of ``tasks.stream`` (the arguments are checked here)."""
        if model is None:
            spec, timeout, state = direct_stream(
                worker_id,
                peer_id,
                prompt,
                task_id,
                timeout,
                feedback,
                feedback_rating,
                idle_timeout,
                client_timeout=self._client.timeout,
                client_idle=self._client.idle_timeout,
            )
            return (lambda state: self._chunks(spec, timeout, state)), state
        prompt, timeout = check_routed(worker_id, peer_id, prompt, timeout, max_retries)
        kwargs = {
            "prompt": prompt,
            "timeout": timeout,
            "feedback": feedback,
            "feedback_rating": feedback_rating,
            "idle_timeout": idle_timeout,
        }
        routed = functools.partial(
            routed_stream_flow,
            model=model,
            min_honesty=min_honesty,
            max_retries=max_retries,
            kwargs=kwargs,
        )
        return (lambda state: self._drive(routed(state))), StreamState(task_id=task_id)

    def _collect_flow(self, task_id: str, timeout: float) -> TaskFlow[list[Path]]:
        return collect_flow(
            task_id,
            self._client.artifacts,
            route_missing=self._client._artifact_route_missing,
            client_timeout=self._client.timeout,
            timeout=timeout,
        )

    def _scatter_call(self, **arguments: Any) -> ScatterCall:
        return scatter_call(**arguments, client_idle=self._client.idle_timeout)


class SyncTaskDriver(_TaskDriver):
    """Perform task flows with the sync client."""

    # The public methods of `Tasks`, looked up on the instance (a test may replace them).
    run: Callable[..., TaskResult]
    stream: Callable[..., TaskStream[TaskChunk]]
    collect_artifacts: Callable[..., list[Path]]

    def __init__(self, client: SyncTaskClient) -> None:
        self._client: SyncTaskClient = client

    def _run_flow(self, flow: TaskFlow[R]) -> R:
        pump = Pump(flow)
        with contextlib.ExitStack() as stack, contextlib.closing(pump):
            if self._advance(pump, stack) is not None:
                raise RuntimeError("a flow run for its result emitted an item")
        return pump.result

    def _drive(self, flow: TaskFlow[None]) -> Iterator[Any]:
        pump = Pump(flow)
        with contextlib.ExitStack() as stack, contextlib.closing(pump):
            while (emit := self._advance(pump, stack)) is not None:
                yield emit.value

    def _advance(self, pump: Pump[Any], stack: contextlib.ExitStack) -> Emit[Any] | None:
        while (step := pump.next()) is not None:
            if isinstance(step, Emit):
                return step
            try:
                pump.send(self._perform(step, stack))
            except BaseException as exc:  # raised in the flow, which decides what it means
                pump.throw(exc)
        return None

    def _perform(self, step: TaskStep, stack: contextlib.ExitStack) -> Any:
        match step:
            case Pull():
                return next(step.stream, None)
            case ReadTask():
                with self.stream(**step.kwargs) as stream:
                    return stream, "".join(chunk.text for chunk in stream)
            case RunTask():
                return self.run(**step.kwargs)
            case OpenTask():
                return stack.enter_context(self.stream(**step.kwargs))
            case Collect():
                return self.collect_artifacts(step.task_id, timeout=step.timeout)
            case Sleep():
                time.sleep(step.seconds)
            case _:
                return self._perform_io(step)
        return None

    def _perform_io(self, step: TaskStep) -> Any:
        client = self._client
        match step:
            case RequestSpec():
                return client.request_json(step)
            case FetchWorkers():
                return client.workers.list()
            case MatchWorkers():
                return client.workers.match(step.model, min_honesty=step.min_honesty)
            case Download():
                self._download(step.spec, step.target)
            case Extract():
                return extract_zip(step)
            case NoArtifactRoute():
                client._artifact_route_missing = True
        return None

    def _download(self, spec: RequestSpec, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, "wb") as sink:
                for piece in self._client.stream(spec, BytesDecoder(), bytes, on_error=_as_is):
                    sink.write(piece)
        except AgentFMError:
            target.unlink(missing_ok=True)
            raise

    def _chunks(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> Iterator[TaskChunk]:
        body = TaskBody(state)
        yield from self._client.stream(
            spec, body.decoder, body.parse, **_stream_options(body, timeout, self._client)
        )
        yield from body.end()

    def _scatter_iter(self, call: ScatterCall) -> Iterator[ScatterResult]:
        if not call.prompts:
            return
        scheduler = self._run_flow(scheduler_flow(call))
        if use_fast_path(self._client):
            fast = fast_attempt(self._client, call.timeout, self._collect_in_thread, call.idle)
            yield from run_sync(
                scheduler, on_progress=call.on_progress, async_attempt=fast, on_close=fast.close
            )
        else:
            yield from run_sync(scheduler, functools.partial(self._attempt, call), call.on_progress)

    def _attempt(self, call: ScatterCall, dispatch: Dispatch) -> AttemptOutcome:
        task_id = mint_task_id()
        kwargs = run_kwargs(self, dispatch, task_id, call.timeout, call.idle)
        return self._run_flow(attempt_flow(task_id, kwargs))

    async def _collect_in_thread(self, task_id: str) -> list[Path]:
        return await asyncio.to_thread(self.collect_artifacts, task_id)


class AsyncTaskDriver(_TaskDriver):
    """Perform task flows with the async client."""

    # The public methods of `AsyncTasks`, looked up on the instance (a test may replace them).
    run: Callable[..., Awaitable[TaskResult]]
    stream: Callable[..., AsyncTaskStream[TaskChunk]]
    collect_artifacts: Callable[..., Awaitable[list[Path]]]

    def __init__(self, client: AsyncTaskClient) -> None:
        self._client: AsyncTaskClient = client

    async def _run_flow(self, flow: TaskFlow[R]) -> R:
        pump = Pump(flow)
        async with contextlib.AsyncExitStack() as stack:
            with contextlib.closing(pump):
                if await self._advance(pump, stack) is not None:
                    raise RuntimeError("a flow run for its result emitted an item")
        return pump.result

    async def _drive(self, flow: TaskFlow[None]) -> AsyncIterator[Any]:
        pump = Pump(flow)
        async with contextlib.AsyncExitStack() as stack:
            with contextlib.closing(pump):
                while (emit := await self._advance(pump, stack)) is not None:
                    yield emit.value

    async def _advance(self, pump: Pump[Any], stack: contextlib.AsyncExitStack) -> Emit[Any] | None:
        while (step := pump.next()) is not None:
            if isinstance(step, Emit):
                return step
            try:
                pump.send(await self._perform(step, stack))
            except BaseException as exc:  # raised in the flow, which decides what it means
                pump.throw(exc)
        return None

    async def _perform(self, step: TaskStep, stack: contextlib.AsyncExitStack) -> Any:
        match step:
            case Pull():
                return await anext(step.stream, None)
            case ReadTask():
                async with self.stream(**step.kwargs) as stream:
                    return stream, "".join([chunk.text async for chunk in stream])
            case RunTask():
                return await self.run(**step.kwargs)
            case OpenTask():
                return await stack.enter_async_context(self.stream(**step.kwargs))
            case Collect():
                return await self.collect_artifacts(step.task_id, timeout=step.timeout)
            case Sleep():
                await asyncio.sleep(step.seconds)
            case _:
                return await self._perform_io(step)
        return None

    async def _perform_io(self, step: TaskStep) -> Any:
        client = self._client
        match step:
            case RequestSpec():
                return await client.request_json(step)
            case FetchWorkers():
                return await client.workers.list()
            case MatchWorkers():
                return await client.workers.match(step.model, min_honesty=step.min_honesty)
            case Download():
                await self._download(step.spec, step.target)
            case Extract():
                return await asyncio.to_thread(extract_zip, step)
            case NoArtifactRoute():
                client._artifact_route_missing = True
        return None

    async def _download(self, spec: RequestSpec, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(target, "wb") as sink:  # noqa: ASYNC230 - local disk, small writes
                pieces = self._client.stream(spec, BytesDecoder(), bytes, on_error=_as_is)
                async for piece in pieces:
                    sink.write(piece)
        except AgentFMError:
            await asyncio.to_thread(target.unlink, missing_ok=True)
            raise

    async def _chunks(
        self, spec: RequestSpec, timeout: float | None, state: StreamState
    ) -> AsyncIterator[TaskChunk]:
        body = TaskBody(state)
        options = _stream_options(body, timeout, self._client)
        async for chunk in self._client.stream(spec, body.decoder, body.parse, **options):
            yield chunk
        for chunk in body.end():
            yield chunk

    async def _scatter_iter(self, call: ScatterCall) -> AsyncIterator[ScatterResult]:
        if not call.prompts:
            return
        scheduler = await self._run_flow(scheduler_flow(call))
        if use_fast_path(self._client):
            fast = fast_attempt(self._client, call.timeout, self.collect_artifacts, call.idle)
            results = run_async(scheduler, fast, call.on_progress, on_close=fast.close)
        else:
            attempt = functools.partial(self._attempt, call)
            results = run_async(scheduler, attempt, call.on_progress)
        async for result in results:
            yield result

    async def _attempt(self, call: ScatterCall, dispatch: Dispatch) -> AttemptOutcome:
        task_id = mint_task_id()
        kwargs = run_kwargs(self, dispatch, task_id, call.timeout, call.idle)
        return await self._run_flow(attempt_flow(task_id, kwargs))
