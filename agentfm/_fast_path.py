"""Scatter's fast path: when it may be used, and one attempt over `ExecutePool`.

`use_fast_path` is the one decision; `fast_attempt` builds a `FastAttempt` from the same
`RequestSpec` the httpx path sends (headers, absolute URL, timeouts), so the attempt holds
values, not the client. Both paths report a failed attempt through `failed_outcome`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from agentfm._base_client import RequestSpec, encode_body, idle_bound, resolve_timeout
from agentfm._execute_pool import ExecutePool, supports
from agentfm._scatter import AttemptOutcome, Dispatch
from agentfm._streaming import strip_failure_line
from agentfm._transport import AsyncShardedTransport, ShardedTransport
from agentfm._validation import mint_task_id
from agentfm.exceptions import AgentFMError, TaskFailedError
from agentfm.models import TaskResult

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    import httpx

__all__ = [
    "FastAttempt",
    "ScatterClient",
    "failed_outcome",
    "failure_text",
    "fast_attempt",
    "run_kwargs",
    "run_replaced",
    "use_fast_path",
]

log = logging.getLogger("agentfm.tasks")


class ScatterClient(Protocol):
    """What the fast path reads from a client (both clients have it; no import of them)."""

    gateway_url: str
    timeout: httpx.Timeout
    max_connections: int | None
    max_output_bytes: int | None
    _proxy: httpx.Proxy | None
    _injected_http: bool

    @property
    def _http(self) -> object: ...
    @property
    def tasks(self) -> object: ...
    def _prepare(self, spec: RequestSpec) -> RequestSpec: ...


_TRANSPORT_METHODS = (
    ("httpcore", "ConnectionPool", "handle_request"),
    ("httpcore", "AsyncConnectionPool", "handle_async_request"),
    ("httpx", "HTTPTransport", "handle_request"),
    ("httpx", "AsyncHTTPTransport", "handle_async_request"),
)


def _foreign(func: object, package: str) -> bool:
    """Whether ``func`` comes from outside ``package``: a mock or a test double replaced it.

    A replacement swaps the attribute for its own function (or a non-function), so the
    method no longer comes from the library's own modules.
    """
    module = getattr(func, "__module__", None) or ""
    return not module.startswith(package + ".")


def _transport_patched() -> bool:
    """Whether an HTTP mock (respx, pytest-httpx, a monkeypatch) replaced a transport method."""
    import httpcore
    import httpx

    libraries = {"httpcore": httpcore, "httpx": httpx}
    for library, cls_name, method in _TRANSPORT_METHODS:
        cls = getattr(libraries[library], cls_name, None)
        if cls is not None and _foreign(getattr(cls, method, None), library):
            return True
    for sharded in (ShardedTransport, AsyncShardedTransport):
        for method in ("handle_request", "handle_async_request"):
            func = sharded.__dict__.get(method)
            if func is not None and getattr(sharded, method) is not func:
                return True
    return False


def use_fast_path(client: ScatterClient) -> bool:
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
    if run_replaced(client.tasks):
        return False
    return not _transport_patched()


def run_replaced(tasks: object) -> bool:
    """Whether ``tasks.run`` is not the SDK's own (a test double, a caller's wrapper)."""
    return _foreign(getattr(getattr(tasks, "run", None), "__func__", None), "agentfm")


def run_kwargs(
    tasks: object,
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
    if not run_replaced(tasks):
        kwargs["task_id"] = task_id
        kwargs["timeout"] = timeout
        kwargs["idle_timeout"] = idle
    elif timeout is not None:
        kwargs["timeout"] = timeout
    return kwargs


def failure_text(exc: AgentFMError, text: str) -> str:
    """The text a failed scatter attempt keeps: a completed task's (artifact trouble), or
    what a failed task (agent exited, start failed) wrote before failing."""
    partial = getattr(exc, "result", None)
    if isinstance(partial, TaskResult):
        return partial.text
    if isinstance(exc, TaskFailedError):
        return exc.text
    return text


def failed_outcome(exc: Exception, task_id: str, started: float, text: str = "") -> AttemptOutcome:
    """The outcome of an attempt that raised, on either path.

    A non-SDK exception is a bug; it must not lose the item, so it becomes that item's
    failure (and is logged with its traceback).
    """
    if isinstance(exc, AgentFMError):
        error, text = exc, failure_text(exc, text)
    else:
        log.exception("scatter attempt failed unexpectedly")
        error, text = AgentFMError(f"unexpected error: {exc!r}"), ""
    return AttemptOutcome(
        text=text, task_id=task_id, error=error, duration=time.monotonic() - started
    )


class FastAttempt:
    """One scatter attempt over `ExecutePool` (the pool binds to the driver's event loop).

    Args:
        template: The ``POST /api/execute`` spec as the client completes it for the httpx
            path (absolute URL, headers, timeouts); each attempt sends it with its own body.
        gateway_url: The gateway's bare URL (for the pool and its error messages).
        timeout: The scatter's per-attempt ``timeout`` (a total deadline; None: none).
        collect: Fetches a task's files when its stream said files are incoming.
        max_connections: The client's connection cap (None: one per attempt in flight).
        max_output_bytes: The client's output cap (None: no cap).
    """

    def __init__(
        self,
        template: RequestSpec,
        gateway_url: str,
        timeout: float | None,
        collect: Callable[[str], Awaitable[list[Path]]],
        *,
        max_connections: int | None = None,
        max_output_bytes: int | None = None,
    ) -> None:
        self._template = template
        self._url = gateway_url
        self._timeout = timeout
        self._collect = collect
        self._max_connections = max_connections
        self._max_output = max_output_bytes
        self._pool: ExecutePool | None = None

    async def __call__(self, dispatch: Dispatch) -> AttemptOutcome:
        pool = self._pool
        if pool is None:
            connect = self._template.timeout.connect if self._template.timeout else None
            pool = self._pool = ExecutePool(
                self._url, connect_timeout=connect, max_connections=self._max_connections
            )
        started = time.monotonic()
        task_id = mint_task_id()
        template = self._template
        text = ""
        try:
            # The template goes as it is, with this attempt's body (same encoding and cap
            # as `RequestSpec.encode_body`): no spec is built per attempt.
            body = encode_body(
                {"worker_id": dispatch.peer_id, "prompt": dispatch.prompt, "task_id": task_id}
            )
            text, files_incoming = await pool.execute(
                template, timeout=self._timeout, max_output_bytes=self._max_output, body=body
            )
            artifacts = await self._collect(task_id) if files_incoming else []
        except Exception as exc:
            if isinstance(exc, TaskFailedError):
                exc.text = strip_failure_line(getattr(exc, "partial_text", ""))
                exc.task_id, exc.peer_id = task_id, dispatch.peer_id
            return failed_outcome(exc, task_id, started, text)
        return AttemptOutcome(
            text=text, artifacts=artifacts, task_id=task_id, duration=time.monotonic() - started
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def fast_attempt(
    client: ScatterClient,
    timeout: float | None,
    collect: Callable[[str], Awaitable[list[Path]]],
    idle_timeout: float | None = None,
) -> FastAttempt:
    """A `FastAttempt` for ``client``'s scatter: its spec is built once, as ``tasks.run``'s.

    The timeouts are the ones the httpx path would use (`resolve_timeout`/`idle_bound`),
    and the client completes the spec (URL, auth and default headers) as it does for every
    request it sends.
    """
    template = client._prepare(
        RequestSpec(
            "POST",
            "/api/execute",
            timeout=resolve_timeout(client.timeout, timeout, "long", idle_timeout),
            idle_timeout=idle_bound(timeout, idle_timeout),
        )
    )
    return FastAttempt(
        template,
        client.gateway_url,
        timeout,
        collect,
        max_connections=client.max_connections,
        max_output_bytes=client.max_output_bytes,
    )
