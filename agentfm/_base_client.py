"""Pure decisions shared by the sync and async clients.

Request building, timeouts and the retry policy live here; the mapping of responses and
transport failures to typed errors lives in `agentfm._wire_errors` and is re-exported here.
Nothing in this module performs I/O or sleeps; the clients' short drivers ask it what to
send and what a response or failure means.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx
import tenacity

from agentfm._backoff import exponential
from agentfm._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_REQUEST_BODY,
    RETRY_AFTER_MAX,
    RETRY_BACKOFF_BASE,
    RETRY_BACKOFF_MAX,
    RETRY_JITTER,
    RETRY_STATUSES,
)
from agentfm._redact import redact_text
from agentfm._wire_errors import (
    IDLE_EXTENSION,
    MUX_NOT_FOUND,
    call_timeout_error,
    connect_timeout_error,
    connection_error,
    decode_json,
    error_from_response,
    error_from_transport,
    idle_timeout_error,
    output_too_large_error,
    parse_retry_after,
)
from agentfm.exceptions import (
    AgentFMError,
    AgentFMTimeoutError,
    GatewayConnectionError,
    InvalidRequestError,
)

if TYPE_CHECKING:
    import random
    from collections.abc import Awaitable, Callable, Mapping

__all__ = [
    "IDLE_EXTENSION",
    "MUX_NOT_FOUND",
    "RequestSpec",
    "RetryPolicy",
    "acall_with_retry",
    "async_retrying",
    "call_timeout_error",
    "call_with_retry",
    "connect_timeout_error",
    "connection_error",
    "decode_json",
    "encode_body",
    "encode_json",
    "error_from_response",
    "error_from_transport",
    "idle_bound",
    "idle_timeout_error",
    "output_too_large_error",
    "parse_retry_after",
    "resolve_timeout",
    "sync_retrying",
]

log = logging.getLogger("agentfm.http")

TimeoutKind = Literal["short", "long"]
T = TypeVar("T")

# One encoder for every request body: ``json.dumps`` with any option builds a fresh
# `json.JSONEncoder` per call, a cost paid once per scatter attempt. Same output.
_JSON = json.JSONEncoder(ensure_ascii=False)
_json_string = json.encoder.encode_basestring  # the C function `_JSON` uses for strings


def encode_json(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)``, with a shortcut for a flat dict of strings.

    A task body (``worker_id``, ``prompt``, ``task_id``) is such a dict; quoting its
    strings directly skips building an encoder per call and gives the same text.
    """
    if type(value) is dict:
        parts = []
        for key, item in value.items():
            if type(key) is not str or type(item) is not str:
                return _JSON.encode(value)
            parts.append(_json_string(key) + ": " + _json_string(item))
        return "{" + ", ".join(parts) + "}"
    return _JSON.encode(value)


def encode_body(value: Any) -> bytes:
    """The JSON request body of ``value``, refusing one the gateway would cut.

    `RequestSpec.encode_body` and the scatter fast path (which sends one template spec
    with a body per attempt) both encode through here, so both keep the cap.
    """
    content = encode_json(value).encode("utf-8")
    if len(content) > MAX_REQUEST_BODY:
        # The gateway reads only the first 1 MiB and answers "Invalid JSON payload"
        # after the whole upload; refusing here says why, and sends nothing.
        raise InvalidRequestError(
            f"request body is {len(content)} bytes; the gateway accepts at most "
            f"{MAX_REQUEST_BODY} (shorten the prompt)",
            code="request_too_large",
        )
    return content


@dataclass(frozen=True)
class RequestSpec:
    """Everything needed to send one request; built by the resources, sent by the clients."""

    method: Literal["GET", "POST"]
    path: str
    json: Any = None
    params: Mapping[str, str] | None = None
    timeout: httpx.Timeout | None = None
    idempotent: bool = False
    auth: bool = True
    # Carries the bearer key: never part of a repr or a log line.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    # The read timeout of a long call is the idle bound (`idle_timeout`): a read timeout
    # is then reported under that name.
    idle_timeout: float | None = None

    def encode_body(self) -> bytes | None:
        """The JSON body as sent, refusing one the gateway would cut (pure: nothing is sent)."""
        return None if self.json is None else encode_body(self.json)

    def build(self) -> httpx.Request:
        """Return the `httpx.Request` (pure: nothing is sent).

        ``path`` must be absolute by now and ``headers`` complete: the clients fill both in.
        """
        headers = dict(self.headers)
        content = self.encode_body()
        if content is not None:
            headers["Content-Type"] = "application/json"
        extensions: dict[str, Any] = {}
        if self.timeout is not None:
            extensions["timeout"] = self.timeout.as_dict()
        if self.idle_timeout is not None:
            extensions[IDLE_EXTENSION] = self.idle_timeout
        try:
            return httpx.Request(
                self.method,
                self.path,
                params=dict(self.params) if self.params else None,
                headers=headers,
                content=content,
                extensions=extensions,
            )
        except httpx.InvalidURL as exc:
            # Raised at the first request (as 0.3.0 did), inside the caller's ``try``.
            raise InvalidRequestError(
                f"invalid gateway URL: {redact_text(str(exc))}", code="invalid_gateway_url"
            ) from None


def resolve_timeout(
    client_timeout: httpx.Timeout,
    call_timeout: float | None,
    kind: TimeoutKind,
    idle_timeout: float | None = None,
) -> httpx.Timeout:
    """Pick the httpx timeout of one call.

    Short JSON calls use the client's timeout. Long calls (tasks, completions) keep the
    client's connect/write/pool timeouts, and their read timeout is ``idle_timeout``: the
    gateway answers only when the agent is done, so only a stream silent for that long is
    stuck (None: unbounded). An explicit per-call ``timeout`` bounds every phase (the
    drivers also enforce it as a total deadline).
    """
    if call_timeout is not None:
        read = call_timeout if idle_timeout is None else min(call_timeout, idle_timeout)
        if kind == "short":
            return httpx.Timeout(call_timeout)
        return httpx.Timeout(call_timeout, read=read)
    if kind == "short":
        return client_timeout
    return httpx.Timeout(
        connect=client_timeout.connect,
        read=idle_timeout,
        write=client_timeout.write,
        pool=client_timeout.pool,
    )


def idle_bound(call_timeout: float | None, idle_timeout: float | None) -> float | None:
    """The idle bound that is tighter than the call's own timeout (None: not binding)."""
    if idle_timeout is None or (call_timeout is not None and call_timeout <= idle_timeout):
        return None
    return idle_timeout


def default_timeout(value: float | httpx.Timeout | None) -> httpx.Timeout:
    """Turn the client ``timeout`` argument into an `httpx.Timeout`."""
    if isinstance(value, httpx.Timeout):
        return value
    if value is None:
        return httpx.Timeout(DEFAULT_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)
    return httpx.Timeout(float(value))


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry one call and how long to wait.

    Idempotent requests (GET) are retried on transient statuses and on transport errors.
    Non-idempotent POSTs are retried only when the request provably never left this
    process (connection refused, connect or pool timeout), never after it was sent.
    """

    retries: int
    idempotent: bool
    backoff_base: float = RETRY_BACKOFF_BASE
    backoff_max: float = RETRY_BACKOFF_MAX
    jitter: float = RETRY_JITTER
    retry_after_max: float = RETRY_AFTER_MAX

    def should_retry(self, exc: BaseException | None) -> bool:
        """Whether a failed attempt ending in ``exc`` may be repeated."""
        if not isinstance(exc, AgentFMError):
            return False
        if not getattr(exc, "request_sent", True):
            return not isinstance(exc, InvalidRequestError)
        if not self.idempotent:
            return False
        if exc.retry_after is not None and exc.retry_after > self.retry_after_max:
            return False
        if exc.code == "rate_limited":
            # Only failed auth attempts are limited; repeating one cannot succeed.
            return False
        if exc.status is not None:
            return exc.status in RETRY_STATUSES
        return isinstance(exc, GatewayConnectionError) and not isinstance(exc, AgentFMTimeoutError)

    def delay(
        self, attempt: int, exc: BaseException | None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        backoff = exponential(
            attempt - 1, base=self.backoff_base, cap=self.backoff_max, jitter=self.jitter, rng=rng
        )
        retry_after = exc.retry_after if isinstance(exc, AgentFMError) else None
        return float(max(backoff, retry_after or 0.0))


def _tenacity_kwargs(policy: RetryPolicy) -> dict[str, Any]:
    def retry(state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        return outcome is not None and outcome.failed and policy.should_retry(outcome.exception())

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        seconds = policy.delay(state.attempt_number, exc)
        log.debug("retrying in %.2fs after %r", seconds, exc)
        return seconds

    return {
        "stop": tenacity.stop_after_attempt(policy.retries + 1),
        "retry": retry,
        "wait": wait,
        "reraise": True,
    }


def call_with_retry(policy: RetryPolicy, attempt: Callable[[], T]) -> T:
    """Run ``attempt`` under ``policy``; tenacity takes over only once a retry is due.

    The common case (first attempt succeeds, or fails for good) never builds a tenacity
    controller. When a retry is due, tenacity replays the first failure as its own first
    attempt, so its stop/wait/``Retry-After`` logic runs unchanged from there.
    """
    try:
        return attempt()
    except AgentFMError as exc:
        if policy.retries == 0 or not policy.should_retry(exc):
            raise
        replayed = [exc]

    def replay_then_attempt() -> T:
        if replayed:
            raise replayed.pop()
        return attempt()

    return sync_retrying(policy)(replay_then_attempt)


async def acall_with_retry(policy: RetryPolicy, attempt: Callable[[], Awaitable[T]]) -> T:
    """The asyncio twin of `call_with_retry`."""
    try:
        return await attempt()
    except AgentFMError as exc:
        if policy.retries == 0 or not policy.should_retry(exc):
            raise
        replayed = [exc]

    async def replay_then_attempt() -> T:
        if replayed:
            raise replayed.pop()
        return await attempt()

    return await async_retrying(policy)(replay_then_attempt)


def sync_retrying(policy: RetryPolicy) -> tenacity.Retrying:
    """The tenacity controller for a sync call under ``policy``."""
    return tenacity.Retrying(**_tenacity_kwargs(policy))


def async_retrying(policy: RetryPolicy) -> tenacity.AsyncRetrying:
    """The tenacity controller for an async call under ``policy``."""
    return tenacity.AsyncRetrying(**_tenacity_kwargs(policy))
