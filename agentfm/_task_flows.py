"""The decisions of ``client.tasks``: requests, checks, and the flows of a task.

Pure: nothing here performs I/O or sleeps. The flows (`run_call` gives the one of
``tasks.run``; `routed_stream_flow`, `submit_flow`) yield their I/O as steps of
`agentfm._flow`, and the drivers in `agentfm.resources._task_drivers` perform them for
the sync and the async client alike. Where a routed task goes next, and whether it may,
is `agentfm._routing`'s decision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from agentfm._base_client import RequestSpec, idle_bound, resolve_timeout
from agentfm._constants import DEFAULT_ARTIFACT_TIMEOUT
from agentfm._decoders import RejectionGate
from agentfm._flow import Emit, Sleep
from agentfm._routing import IN_FLIGHT, plan_for
from agentfm._streaming import MarkerDecoder, StreamState, strip_failure_line
from agentfm._task_steps import Collect, MatchWorkers, OpenTask, Pull, ReadTask, RunTask, TaskFlow
from agentfm._validation import (
    mint_task_id,
    pick_peer,
    require_non_negative_int,
    require_prompt,
    require_task_id,
    require_timeout,
)
from agentfm.exceptions import (
    AgentFMError,
    ArtifactError,
    GatewayProtocolError,
    InvalidRequestError,
    TaskFailedError,
)
from agentfm.models import AsyncTaskAck, PeerID, TaskChunk, TaskResult

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

__all__ = [
    "CLIENT_DEFAULT",
    "TaskBody",
    "arguments",
    "check_routed",
    "direct_stream",
    "idle_or_default",
    "routed_stream_flow",
    "run_call",
    "submit_flow",
]


R = TypeVar("R")


class _ClientDefault:
    def __repr__(self) -> str:
        return "<client default>"


CLIENT_DEFAULT: Any = _ClientDefault()
"""``idle_timeout=`` left out: the client's ``idle_timeout`` applies."""


def arguments(method_locals: dict[str, Any]) -> dict[str, Any]:
    """A public method's arguments as keywords: its ``locals()``, taken first thing, less self.

    The sync and the async twin of a method hand their arguments on this way, to a
    function whose parameters bear the same names, so neither twin can drop or swap one.
    """
    passed = method_locals.copy()
    passed.pop("self", None)
    return passed


def idle_or_default(idle_timeout: float | None, client_idle: float | None) -> float | None:
    """The idle bound of one call: its own, or the client's when it passed none."""
    if isinstance(idle_timeout, _ClientDefault):
        return client_idle
    return require_timeout(idle_timeout, name="idle_timeout")


def _execute_spec(
    client_timeout: httpx.Timeout,
    peer: str,
    prompt: str,
    task_id: str,
    timeout: float | None,
    feedback: str | None,
    feedback_rating: float | None,
    idle_timeout: float | None,
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
        timeout=resolve_timeout(client_timeout, timeout, "long", idle_timeout),
        idle_timeout=idle_bound(timeout, idle_timeout),
    )


def direct_stream(
    worker_id: str | None,
    peer_id: str | None,
    prompt: str,
    task_id: str | None,
    timeout: float | None,
    feedback: str | None,
    feedback_rating: float | None,
    idle_timeout: float | None,
    *,
    client_timeout: httpx.Timeout,
    client_idle: float | None,
) -> tuple[RequestSpec, float | None, StreamState]:
    """Check a stream's arguments; return its request, its total timeout and its state."""
    peer = pick_peer(worker_id, peer_id)
    prompt = require_prompt(prompt)
    task_id = require_task_id(task_id) if task_id is not None else mint_task_id()
    timeout = require_timeout(timeout)
    idle = idle_or_default(idle_timeout, client_idle)
    spec = _execute_spec(
        client_timeout, peer, prompt, task_id, timeout, feedback, feedback_rating, idle
    )
    return spec, timeout, StreamState(task_id=task_id, peer_id=peer)


def _started(exc: AgentFMError) -> AgentFMError:
    """Mark ``exc`` as raised after the task started (it must not be sent again)."""
    exc.task_started = True
    return exc


class TaskBody:
    """What one ``/api/execute`` body means: text chunks as they come, then a marker if
    files do, or a failure that keeps the text the task produced.

    The client's ``stream`` driver feeds `decoder` and hands each text to `parse`; it calls
    `decoder.raise_for_end` at the end and `failed` on an error after the 200. `end` then
    records a clean end.
    """

    def __init__(self, state: StreamState) -> None:
        self._state = state
        self.decoder = MarkerDecoder()
        self._seen: list[str] = []  # references to the yielded strings, joined on failure

    def parse(self, text: str) -> TaskChunk:
        """The chunk of one piece of decoded text."""
        self._seen.append(text)
        return TaskChunk.model_construct(text=text, kind="text")

    def end(self) -> list[TaskChunk]:
        """Record a clean end; the marker chunk when files are coming."""
        self._state.files_incoming = self.decoder.files_incoming
        self._state.finished = True
        return [TaskChunk(text="", kind="marker")] if self.decoder.files_incoming else []

    def failed(self, exc: AgentFMError) -> AgentFMError:
        """Mark a failure after the 200 and keep the text the task produced before it."""
        _started(exc)
        text = "".join(self._seen)
        if isinstance(exc, TaskFailedError):
            exc.text = strip_failure_line(text)
            exc.task_id = self._state.task_id
            exc.peer_id = self._state.peer_id
        elif text:
            exc.partial_text = text  # type: ignore[attr-defined]
        return exc


def check_routed(
    worker_id: str | None,
    peer_id: str | None,
    prompt: str,
    timeout: float | None,
    max_retries: int,
) -> tuple[str, float | None]:
    """Check a call routed by ``model=``; return its prompt and timeout."""
    if worker_id is not None or peer_id is not None:
        raise InvalidRequestError(
            "pass model= or worker_id=, not both", code="invalid_request_error"
        )
    require_non_negative_int(max_retries, name="max_retries")
    return require_prompt(prompt), require_timeout(timeout)


@dataclass
class _Try:
    """One attempt of a routed task: its peer, task id, the peers tried, its rejection gate."""

    peer: str
    task_id: str | None
    tried: list[str]
    gate: RejectionGate


def _failover(
    model: str,
    min_honesty: float | None,
    max_retries: int,
    task_id: str | None,
    attempt: Callable[[_Try], TaskFlow[R]],
) -> TaskFlow[R]:
    """Run ``attempt`` on the workers matching ``model`` until one succeeds.

    A failure `PeerPlan.failed` allows moves to the next peer; a try whose gate let text
    reach the caller is final. The caller's ``task_id`` goes to the first try only.
    """
    plan = plan_for(model, (yield MatchWorkers(model, min_honesty)), max_retries)
    last: AgentFMError | None = None
    while (step := plan.next()) is not None:
        peer, delay = step
        if delay:
            yield Sleep(delay)
        one = _Try(peer, task_id if len(plan.tried) == 1 else None, plan.tried, RejectionGate())
        try:
            with IN_FLIGHT.on(peer):
                return (yield from attempt(one))
        except AgentFMError as exc:
            if not plan.failed(peer, exc, emitted=one.gate.emitted):
                raise
            last = exc
    assert last is not None
    raise last


def run_flow(stream_kwargs: dict[str, Any], artifact_timeout: float) -> TaskFlow[TaskResult]:
    """Run one task on one worker: read its stream, then collect its files if it has any."""
    begun = time.monotonic()
    artifact_timeout = (
        require_timeout(artifact_timeout, name="artifact_timeout") or DEFAULT_ARTIFACT_TIMEOUT
    )
    stream, text = yield ReadTask(stream_kwargs)
    result = TaskResult(
        worker_id=PeerID(stream.peer_id),
        text=text,
        task_id=stream.task_id,
        files_incoming=stream.files_incoming,
        peers_tried=[stream.peer_id],
    )
    if stream.files_incoming:
        try:
            result.artifacts = yield Collect(stream.task_id, artifact_timeout)
        except ArtifactError as exc:
            exc.result = result
            raise _started(exc) from None
    result.duration_seconds = time.monotonic() - begun
    return result


def _run_try(one: _Try, kwargs: dict[str, Any]) -> TaskFlow[TaskResult]:
    result: TaskResult = yield RunTask({**kwargs, "worker_id": one.peer, "task_id": one.task_id})
    result.peers_tried = list(one.tried)
    return result


def run_call(
    *,
    worker_id: str | None,
    prompt: str,
    artifact_timeout: float,
    task_id: str | None,
    timeout: float | None,
    peer_id: str | None,
    feedback: str | None,
    feedback_rating: float | None,
    idle_timeout: float | None,
    model: str | None,
    max_retries: int,
    min_honesty: float | None,
) -> TaskFlow[TaskResult]:
    """The flow of ``tasks.run``: on one worker, or routed by ``model`` with failover.

    A routed call's arguments are checked here, before its flow starts.
    """
    kwargs: dict[str, Any] = {
        "feedback": feedback,
        "feedback_rating": feedback_rating,
        "idle_timeout": idle_timeout,
    }
    if model is None:
        kwargs.update(worker_id=worker_id, peer_id=peer_id, prompt=prompt, task_id=task_id)
        return run_flow({**kwargs, "timeout": timeout}, artifact_timeout)
    prompt, timeout = check_routed(worker_id, peer_id, prompt, timeout, max_retries)
    kwargs.update(prompt=prompt, timeout=timeout, artifact_timeout=artifact_timeout)
    return _failover(model, min_honesty, max_retries, task_id, lambda one: _run_try(one, kwargs))


def _stream_try(
    one: _Try, state: StreamState, kwargs: dict[str, Any]
) -> TaskFlow[tuple[Any, _Try]]:
    attempt = yield OpenTask({**kwargs, "worker_id": one.peer, "task_id": one.task_id})
    # The routed stream's ids follow its current attempt.
    state.peer_id, state.task_id = attempt.peer_id, attempt.task_id
    state.peers_tried = list(one.tried)
    while (chunk := (yield Pull(attempt))) is not None:
        if chunk.kind == "text" and (text := one.gate.feed(chunk.text)):
            yield Emit(TaskChunk.model_construct(text=text, kind="text"))
    return attempt, one


def routed_stream_flow(
    state: StreamState,
    model: str,
    min_honesty: float | None,
    max_retries: int,
    kwargs: dict[str, Any],
) -> TaskFlow[None]:
    """Stream a task routed by ``model``, failing over while no text reached the caller.

    Each try's leading rejection line is held back (`RejectionGate`), so a refusal fails
    over as if nothing had been emitted. ``kwargs`` go to each try's ``tasks.stream``.
    """
    attempt, one = yield from _failover(
        model, min_honesty, max_retries, state.task_id, lambda t: _stream_try(t, state, kwargs)
    )
    if text := one.gate.flush():
        yield Emit(TaskChunk.model_construct(text=text, kind="text"))
    state.files_incoming = attempt.files_incoming
    state.finished = True
    if attempt.files_incoming:
        yield Emit(TaskChunk(text="", kind="marker"))


def _async_spec(peer: str, prompt: str, webhook_url: str | None) -> RequestSpec:
    body = {"worker_id": peer, "prompt": prompt}
    if webhook_url:
        body["webhook_url"] = webhook_url
    return RequestSpec("POST", "/api/execute/async", json=body)


def submit_flow(
    worker_id: str | None, peer_id: str | None, prompt: str, webhook_url: str | None
) -> TaskFlow[AsyncTaskAck]:
    """Queue a task (``POST /api/execute/async``); its acknowledgement."""
    spec = _async_spec(pick_peer(worker_id, peer_id), require_prompt(prompt), webhook_url)
    body = yield spec
    try:
        return AsyncTaskAck.model_validate(body)
    except ValidationError:
        raise GatewayProtocolError(
            "unexpected /api/execute/async body", code="invalid_response"
        ) from None
