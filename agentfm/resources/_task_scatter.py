"""Scatter glue of ``client.tasks``: the scheduler's inputs, one attempt, and the fast path.

`scheduler_flow`, `attempt_flow` and `model_peers_flow` are flows (`agentfm._flow`) the
two drivers of `agentfm.resources._task_drivers` perform. The block from
`_transport_patched` to `_FastAttempt` is the scatter fast path over `ExecutePool`
(whether to use it, and one attempt through it); `FastPathClient` is what it reads of the
client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from agentfm._base_client import RequestSpec
from agentfm._execute_pool import ExecutePool, supports
from agentfm._flow import FetchWorkers, Flow, MatchWorkers, RunTask, Sleep
from agentfm._poll import poll_until
from agentfm._scatter import AttemptOutcome, Dispatch, ScatterScheduler
from agentfm._streaming import strip_failure_line
from agentfm._task_flows import idle_or_default
from agentfm._transport import AsyncShardedTransport, ShardedTransport
from agentfm._trust import require_min_honesty, trusted_peer_ids
from agentfm._validation import (
    mint_task_id,
    require_non_negative_int,
    require_peer_ids,
    require_positive_int,
    require_prompt,
    require_timeout,
)
from agentfm.exceptions import (
    AgentFMError,
    InvalidRequestError,
    NoWorkerForModelError,
    TaskFailedError,
)
from agentfm.models import ScatterProgress, ScatterResult, TaskResult, WorkerProfile

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

__all__ = [
    "FastPathClient",
    "Pick",
    "ScatterCall",
    "attempt_flow",
    "in_input_order",
    "model_peers_flow",
    "scatter_call",
    "scheduler_flow",
    "use_fast_path",
]

log = logging.getLogger("agentfm.tasks")

Pick = Callable[[list[WorkerProfile]], list[WorkerProfile]]
ProgressCallback = Callable[[ScatterProgress], None]

_WORKER_POLL_INTERVAL = 1.0  # scatter_by_model re-reads telemetry this often while it waits


class _Runs(Protocol):
    def run(self, *args: Any, **kwargs: Any) -> Any: ...


class FastPathClient(Protocol):
    """What the fast path reads of a client (sync or async)."""

    @property
    def gateway_url(self) -> str: ...
    @property
    def timeout(self) -> httpx.Timeout: ...
    @property
    def max_connections(self) -> int | None: ...
    @property
    def max_output_bytes(self) -> int | None: ...
    @property
    def tasks(self) -> _Runs: ...
    @property
    def _proxy(self) -> httpx.Proxy | None: ...
    @property
    def _injected_http(self) -> bool: ...
    @property
    def _http(self) -> object: ...
    @property
    def _auth_headers(self) -> dict[str, str]: ...


# The names the fast path's annotations use. Importing the real classes would close an
# import circle through `agentfm._client` and `agentfm.resources.tasks`.
AgentFMClient: TypeAlias = FastPathClient
AsyncAgentFMClient: TypeAlias = FastPathClient
Tasks: TypeAlias = _Runs
AsyncTasks: TypeAlias = _Runs


def _check_prompts(prompts: Sequence[str]) -> None:
    """Refuse one string in place of a sequence, and any invalid prompt."""
    if isinstance(prompts, str):
        raise InvalidRequestError(
            "prompts must be a sequence of strings, not one string", code="invalid_prompts"
        )
    for position, prompt in enumerate(prompts):
        require_prompt(prompt, name=f"prompts[{position}]")


@dataclass(frozen=True)
class ScatterCall:
    """The checked arguments of one scatter."""

    prompts: Sequence[str]
    peers: list[str]
    max_concurrency: int
    max_retries: int
    timeout: float | None
    on_progress: ProgressCallback | None
    hedge: bool
    min_honesty: float | None
    idle: float | None


def scatter_call(
    *,
    prompts: Sequence[str],
    peer_ids: Sequence[str],
    max_concurrency: int,
    max_retries: int,
    timeout: float | None,
    on_progress: ProgressCallback | None,
    hedge: bool,
    min_honesty: float | None,
    idle_timeout: float | None,
    client_idle: float | None,
) -> ScatterCall:
    """Check the arguments of ``tasks.scatter_iter`` (``client_idle``: the client's bound)."""
    _check_prompts(prompts)
    require_positive_int(max_concurrency, name="max_concurrency")
    require_non_negative_int(max_retries, name="max_retries")
    timeout = require_timeout(timeout)
    peers = require_peer_ids(peer_ids)
    min_honesty = require_min_honesty(min_honesty)
    idle = idle_or_default(idle_timeout, client_idle)
    return ScatterCall(
        prompts, peers, max_concurrency, max_retries, timeout, on_progress, hedge, min_honesty, idle
    )


def in_input_order(results: Iterable[ScatterResult], count: int) -> list[ScatterResult]:
    """Scatter results (completion order) in the order of their prompts."""
    ordered: list[ScatterResult | None] = [None] * count
    for result in results:
        ordered[result.index] = result
    return [r for r in ordered if r is not None]


def scheduler_flow(call: ScatterCall) -> Flow[ScatterScheduler]:
    """The scheduler of one scatter, with the workers' capacity and trust where known."""
    workers: list[WorkerProfile] | None
    try:
        workers = yield FetchWorkers()
    except Exception as exc:
        # Best effort: a gateway without the route, or a user's HTTP mock that does
        # not define it (respx raises its own error), must not fail the scatter.
        log.debug("scatter without telemetry: %r", exc)
        workers = None
    return ScatterScheduler(
        call.prompts,
        trusted_peer_ids(call.peers, workers, call.min_honesty),
        max_concurrency=call.max_concurrency,
        max_retries=call.max_retries,
        capacity={w.peer_id: (w.max_tasks, w.current_tasks) for w in workers or []},
        hedge=call.hedge,
    )


def attempt_flow(task_id: str, run_kwargs: dict[str, Any]) -> Flow[AttemptOutcome]:
    """One scatter attempt through ``tasks.run``; a failure is its outcome, never raised."""
    begun = time.monotonic()
    try:
        result = yield RunTask(run_kwargs)
    except AgentFMError as exc:
        return AttemptOutcome(
            text=_failure_text(exc, ""),
            task_id=task_id,
            error=exc,
            duration=time.monotonic() - begun,
        )
    except Exception as exc:  # a bug must not lose the item: report it as its failure
        log.exception("scatter attempt failed unexpectedly")
        return AttemptOutcome(
            task_id=task_id,
            error=AgentFMError(f"unexpected error: {exc!r}"),
            duration=time.monotonic() - begun,
        )
    return AttemptOutcome(
        text=result.text,
        artifacts=result.artifacts,
        task_id=getattr(result, "task_id", None) or task_id,
        duration=time.monotonic() - begun,
    )


def model_peers_flow(
    *,
    prompts: Sequence[str],
    model: str,
    max_workers: int | None,
    pick: Pick | None,
    wait_for_workers: int,
    poll_timeout: float,
    scatter_opts: dict[str, Any],
) -> Flow[list[str]]:
    """The peers of ``scatter_by_model``, once ``wait_for_workers`` match (or time is up)."""
    model = require_prompt(model, name="model")
    require_non_negative_int(wait_for_workers, name="wait_for_workers")
    _check_prompts(prompts)
    min_honesty = require_min_honesty(scatter_opts.get("min_honesty"))
    matches: list[WorkerProfile] = []
    for pause in poll_until(poll_timeout, _WORKER_POLL_INTERVAL):
        if pause:
            yield Sleep(pause)
        matches = yield MatchWorkers(model, min_honesty)
        if len(matches) >= wait_for_workers:
            break
    if pick is not None:
        matches = list(pick(matches))
    elif max_workers is not None:
        matches = matches[: require_positive_int(max_workers, name="max_workers")]
    if not matches:
        raise NoWorkerForModelError(
            f"no live worker advertises model={model!r}", code="model_not_found"
        )
    return [w.peer_id for w in matches]


_OWN_RUN: dict[str, Any] = {}
"""The SDK's own ``run`` methods, by class name (filled in by `agentfm.resources.tasks`):
a scatter whose ``tasks.run`` was replaced (a test double) sends its attempts through the
replacement."""


_TRANSPORT_METHODS = (
    ("httpcore", "ConnectionPool", "handle_request"),
    ("httpcore", "AsyncConnectionPool", "handle_async_request"),
    ("httpx", "HTTPTransport", "handle_request"),
    ("httpx", "AsyncHTTPTransport", "handle_async_request"),
)


def _transport_patched() -> bool:
    """Whether an HTTP mock (respx, pytest-httpx, a monkeypatch) replaced a transport method.

    A mock swaps the class attribute for its own function, so the method no longer comes
    from the library's own modules.
    """
    import httpcore
    import httpx

    libraries = {"httpcore": httpcore, "httpx": httpx}
    for library, cls_name, method in _TRANSPORT_METHODS:
        cls = getattr(libraries[library], cls_name, None)
        if cls is None:
            continue
        func = getattr(cls, method, None)
        module = getattr(func, "__module__", None) or ""
        if not module.startswith(library + "."):
            return True
    for cls in (ShardedTransport, AsyncShardedTransport):
        for method in ("handle_request", "handle_async_request"):
            func = cls.__dict__.get(method)
            if func is not None and getattr(cls, method) is not func:
                return True
    return False


def use_fast_path(client: AgentFMClient | AsyncAgentFMClient) -> bool:
    """Whether scatter may send its attempts through the lean `ExecutePool`.

    The decision, in one place: only for a plain ``http://`` gateway without a proxy
    (`supports`), when the client still uses the SDK's own transport (no ``http_client``
    or ``transport`` of the caller's, no mounts), when no HTTP mock patched httpx or
    httpcore, and when ``tasks.run`` is the SDK's own. Otherwise every attempt is an
    ordinary ``tasks.run`` over the client's httpx client, so the caller's mocks, transport
    and event hooks see every request.
    """
    if not supports(client.gateway_url, proxy=client._proxy) or client._injected_http:
        return False
    http = client._http
    if type(getattr(http, "_transport", None)) not in (ShardedTransport, AsyncShardedTransport):
        return False
    if any(mount is not None for mount in getattr(http, "_mounts", {}).values()):
        return False
    if _run_replaced(client.tasks):
        return False
    return not _transport_patched()


def _run_replaced(tasks: Tasks | AsyncTasks) -> bool:
    own = _OWN_RUN[type(tasks).__name__]
    return getattr(tasks.run, "__func__", None) is not own


def _run_kwargs(
    tasks: Tasks | AsyncTasks,
    dispatch: Dispatch,
    task_id: str,
    timeout: float | None,
    idle: float | None,
) -> dict[str, Any]:
    """Arguments of one scatter attempt's ``tasks.run`` call.

    A replaced ``run`` (a 0.3.0-style test double) gets 0.3.0's ``worker_id`` and ``prompt``
    only, plus ``timeout`` when the scatter has one.
    """
    kwargs: dict[str, Any] = {"worker_id": dispatch.peer_id, "prompt": dispatch.prompt}
    if not _run_replaced(tasks):
        kwargs["task_id"] = task_id
        kwargs["timeout"] = timeout
        kwargs["idle_timeout"] = idle
    elif timeout is not None:
        kwargs["timeout"] = timeout
    return kwargs


def _failure_text(exc: AgentFMError, text: str) -> str:
    """The text a failed scatter attempt keeps: a completed task's (artifact trouble), or
    what a failed task (agent exited, start failed) wrote before failing."""
    partial = getattr(exc, "result", None)
    if isinstance(partial, TaskResult):
        return partial.text
    if isinstance(exc, TaskFailedError):
        return exc.text
    return text


class _FastAttempt:
    """One scatter attempt over `ExecutePool` (the pool binds to the driver's event loop)."""

    def __init__(
        self,
        client: AgentFMClient | AsyncAgentFMClient,
        timeout: float | None,
        collect: Callable[[str], Awaitable[list[Path]]],
        idle_timeout: float | None = None,
    ) -> None:
        self._client = client
        self._url = client.gateway_url
        self._path = client.gateway_url + "/api/execute"
        self._headers = client._auth_headers
        self._connect_timeout = client.timeout.connect
        self._max_connections = client.max_connections
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._max_output = client.max_output_bytes
        self._collect = collect
        self._pool: ExecutePool | None = None

    async def __call__(self, dispatch: Dispatch) -> AttemptOutcome:
        if self._pool is None:
            self._pool = ExecutePool(
                self._url,
                connect_timeout=self._connect_timeout,
                max_connections=self._max_connections,
            )
        started = time.monotonic()
        task_id = mint_task_id()
        text = ""
        try:
            # The same RequestSpec as tasks.run: same headers, same body cap. (Built
            # directly: the timeouts are enforced by the pool, not read from the spec.)
            spec = RequestSpec(
                "POST",
                self._path,
                json={"worker_id": dispatch.peer_id, "prompt": dispatch.prompt, "task_id": task_id},
                headers=self._headers,
            )
            text, files_incoming = await self._pool.execute(
                spec,
                timeout=self._timeout,
                idle_timeout=self._idle_timeout,
                max_output_bytes=self._max_output,
            )
            artifacts = await self._collect(task_id) if files_incoming else []
        except AgentFMError as exc:
            if isinstance(exc, TaskFailedError):
                exc.text = strip_failure_line(getattr(exc, "partial_text", ""))
                exc.task_id, exc.peer_id = task_id, dispatch.peer_id
            return AttemptOutcome(
                text=_failure_text(exc, text),
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
            text=text, artifacts=artifacts, task_id=task_id, duration=time.monotonic() - started
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
