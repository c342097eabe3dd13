"""The AgentFM error tree.

Every error the SDK raises derives from `AgentFMError` and carries ``message``, ``code``
(the gateway's error code, when it sent one), ``status`` (HTTP status, when there was a
response), ``response`` (the `httpx.Response`, when there was one) and ``retry_after``
(seconds, from a ``Retry-After`` header). No httpx, json or pydantic exception escapes.

```
AgentFMError
├── GatewayConnectionError ── AgentFMTimeoutError
├── GatewayProtocolError
│   ├── InvalidRequestError*        (plain-text 400 from /api/*)
│   ├── DispatchRefusedError*       (403 trust gate / origin check)
│   ├── GatewayInternalError*       (plain-text 500 from /api/*)
│   ├── WorkerUnreachableError*     (plain-text 500 "Failed to connect to worker", 502)
│   └── WorkerStreamError*          (plain-text 500 "Failed to send prompt" …)
├── InvalidRequestError             (400/405, client-side validation)
├── AuthenticationError             (401)
├── DispatchRefusedError            (403)
├── WorkerNotFoundError             (404 "Worker not found or offline")
├── ModelNotFoundError              (404 model_not_found)
│   └── NoWorkerForModelError       (also a WorkerNotFoundError: nothing matches a model)
├── RateLimitError                  (429 rate_limited)
├── MeshOverloadedError             (503 mesh_overloaded)
├── AsyncCapacityError              (503 async_capacity_exhausted)
├── GatewayInternalError            (500)
├── WorkerUnreachableError          (502 worker_unreachable)
├── WorkerStreamError               (502 worker_stream_failed, failure mid-stream)
│   └── IncompleteStreamError       (stream ended without marker or [DONE])
├── TaskExecutionError
│   ├── WorkerRejectedError         (the worker answered "❌ ERROR: …")
│   ├── OutputTooLargeError         (output over the client's max_output_bytes)
│   └── TaskFailedError             (the task ran or tried to, and failed; keeps its text)
│       ├── AgentExitError          ("⚠️  Sandbox exited: …": non-zero exit, killed, timeout)
│       └── TaskStartError          ("❌ Failed to start task: …")
├── ArtifactError
├── LedgerUnavailableError          (503 ledger/comments/host unavailable, 501 not_implemented)
├── LedgerNotFoundError             (404 entry_not_found / comment_not_found)
├── SignatureRejectedError          (401 bad_signature on a caller-signed comment)
├── NotSelfSubmitterError           (403 non_self_submitter)
└── UntrustedPeersError             (a DispatchRefusedError: no candidate passes the trust filter)
```

The ``/v1/peers`` 400 codes (``bad_peer_id``, ``bad_cid``, ``bad_json``, ``missing_field``,
``body_too_large``, ``bad_rating``, ``read_body``, ``store_body``) are `InvalidRequestError`
and its 500 codes (``gather_error``, ``ledger_error``, ``prove_error``, ``append_failed``,
``store_error``) `GatewayInternalError`; ``exc.code`` tells them apart.

The classes marked * above (`PlainTextInvalidRequestError`, `PlainTextDispatchRefusedError`,
`PlainTextGatewayInternalError`, `PlainTextWorkerUnreachableError`,
`PlainTextWorkerStreamError`) are what plain-text answers raise: each is both the typed
error and a `GatewayProtocolError` (what 0.3.0 raised), so code written against either keeps
working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AgentExitError",
    "AgentFMError",
    "AgentFMRoutingWarning",
    "AgentFMTimeoutError",
    "ArtifactError",
    "AsyncCapacityError",
    "AuthenticationError",
    "DispatchRefusedError",
    "GatewayConnectionError",
    "GatewayInternalError",
    "GatewayProtocolError",
    "IncompleteStreamError",
    "InvalidRequestError",
    "LedgerNotFoundError",
    "LedgerUnavailableError",
    "MeshOverloadedError",
    "ModelNotFoundError",
    "NoWorkerForModelError",
    "NotSelfSubmitterError",
    "OutputTooLargeError",
    "PlainTextDispatchRefusedError",
    "PlainTextGatewayInternalError",
    "PlainTextInvalidRequestError",
    "PlainTextWorkerStreamError",
    "PlainTextWorkerUnreachableError",
    "RateLimitError",
    "SignatureRejectedError",
    "TaskExecutionError",
    "TaskFailedError",
    "TaskStartError",
    "UntrustedPeersError",
    "WorkerNotFoundError",
    "WorkerRejectedError",
    "WorkerStreamError",
    "WorkerUnreachableError",
    "from_envelope",
]


class AgentFMError(Exception):
    """Base class of every error raised by the SDK.

    ``request_sent`` is False only when the request provably never left this process
    (connection refused, pool or connect timeout), which is what makes a POST safe to retry.
    ``task_started`` is True when the failure came after the gateway answered 200 to a task.

    Example:
        ```python
        try:
            client.tasks.run(worker_id=peer, prompt="hi")
        except AgentFMError as exc:
            print(exc.status, exc.code, exc.message)
        ```
    """

    request_sent: bool = True
    task_started: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        response: httpx.Response | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.response = response
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"status={self.status!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable across process pools; the response object is not. Extra attributes
        # (a failed task's text, exit detail, ``request_sent`` …) travel as state.
        state = {k: v for k, v in self.__dict__.items() if k not in _CORE_FIELDS}
        return (
            _rebuild,
            (type(self), self.message, self.code, self.status, self.retry_after),
            state,
        )


_CORE_FIELDS = frozenset({"message", "code", "status", "response", "retry_after"})


def _rebuild(
    cls: type[AgentFMError],
    message: str,
    code: str | None,
    status: int | None,
    retry_after: float | None,
) -> AgentFMError:
    return cls(message, code=code, status=status, retry_after=retry_after)


class GatewayConnectionError(AgentFMError):
    """The gateway could not be reached, or the connection failed before an answer."""


class AgentFMTimeoutError(GatewayConnectionError):
    """A call did not finish within its ``timeout``."""


class GatewayProtocolError(AgentFMError):
    """The gateway answered something the SDK cannot interpret as a typed error."""


class InvalidRequestError(AgentFMError, ValueError):
    """The request is invalid (HTTP 400/405 or rejected client-side before sending)."""


class PlainTextInvalidRequestError(InvalidRequestError, GatewayProtocolError):
    """A plain-text 400/405 from an ``/api/*`` route."""


class AuthenticationError(AgentFMError):
    """The gateway rejected the API key (HTTP 401)."""


class DispatchRefusedError(AgentFMError):
    """The gateway refused to dispatch: trust gate or origin check (HTTP 403)."""


class PlainTextDispatchRefusedError(DispatchRefusedError, GatewayProtocolError):
    """A plain-text 403 from an ``/api/*`` route."""


class WorkerNotFoundError(AgentFMError):
    """The worker is not in the gateway's live telemetry."""


class ModelNotFoundError(AgentFMError):
    """No worker matches the requested model (``model_not_found``)."""


class NoWorkerForModelError(ModelNotFoundError, WorkerNotFoundError):
    """No live worker advertises the model (client-side match, e.g. ``scatter_by_model``)."""


class RateLimitError(AgentFMError):
    """Too many failed auth attempts from this address (``rate_limited``)."""


class MeshOverloadedError(AgentFMError):
    """Every worker matching the model is at capacity (``mesh_overloaded``)."""


class AsyncCapacityError(AgentFMError):
    """The gateway's async task slots are full (``async_capacity_exhausted``)."""


class GatewayInternalError(AgentFMError):
    """The gateway failed internally (HTTP 500)."""


class WorkerUnreachableError(AgentFMError):
    """The gateway could not reach the worker (``worker_unreachable``)."""


class WorkerStreamError(AgentFMError):
    """The worker stream failed after the task started."""


class IncompleteStreamError(WorkerStreamError):
    """The stream ended without its terminal marker or ``[DONE]``: the task did not finish."""


class TaskExecutionError(AgentFMError):
    """The worker did not execute the task."""


class WorkerRejectedError(TaskExecutionError):
    """The worker refused the task with a ``❌ ERROR:`` line (capacity, load, version)."""


class OutputTooLargeError(TaskExecutionError):
    """The task's output passed the client's ``max_output_bytes`` (code ``output_too_large``).

    The stream is closed at that point; ``task_started`` is True.
    """


class TaskFailedError(TaskExecutionError):
    """The task reached the worker and failed there (protocol §5.4).

    The worker still ended the stream with its normal marker, so the HTTP exchange looked
    fine; the failure line before the marker says otherwise.

    Attributes:
        text: The task's output before the failure line (what a success would have returned).
        exit_detail: The worker's description, e.g. ``"exit status 3"`` or ``"signal: killed"``.
        task_id: The task id, when known (its files can still be fetched with
            ``tasks.collect_artifacts`` when ``files_incoming`` is True).
        files_incoming: Whether the worker announced files anyway.
        peer_id: The worker that ran the task, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        exit_detail: str = "",
        text: str = "",
        code: str | None = None,
        status: int | None = None,
        response: httpx.Response | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, code=code, status=status, response=response, retry_after=retry_after
        )
        self.exit_detail = exit_detail
        self.text = text
        self.task_id: str | None = None
        self.peer_id: str | None = None
        self.files_incoming = False


class AgentExitError(TaskFailedError):
    """The agent ended abnormally: ``⚠️  Sandbox exited: <detail>``.

    ``exit_code`` is set for ``exit status N``; ``signal`` for ``signal: <name>``. A worker
    that kills an agent at its time limit reports ``signal: killed``, so ``killed`` is True
    (out of memory looks the same).
    """

    def __init__(self, message: str, *, exit_detail: str = "", **kwargs: Any) -> None:
        super().__init__(message, exit_detail=exit_detail, **kwargs)
        _, is_exit, number = exit_detail.partition("exit status ")
        number = number.strip()
        self.exit_code: int | None = (
            int(number) if is_exit and number.lstrip("-").isdigit() else None
        )
        _, is_signal, name = exit_detail.partition("signal: ")
        self.signal: str | None = (name.strip() or None) if is_signal else None
        self.killed: bool = self.signal == "killed"


class TaskStartError(TaskFailedError):
    """The worker could not start the agent: ``❌ Failed to start task: <detail>``."""


class ArtifactError(AgentFMError):
    """An artifact zip is missing, corrupt, unsafe or too large.

    When raised by ``tasks.run``, ``result`` holds the task's `TaskResult` (its text
    survives; its ``artifacts`` list is empty).
    """

    result: Any = None


class LedgerUnavailableError(AgentFMError):
    """The gateway runs without its reputation ledger or comment store (503/501)."""


class LedgerNotFoundError(AgentFMError):
    """No such ledger entry (``entry_not_found``) or comment body (``comment_not_found``)."""


class SignatureRejectedError(AgentFMError):
    """The gateway rejected a caller-signed comment's signature (``bad_signature``)."""


class NotSelfSubmitterError(AgentFMError):
    """A caller-signed comment named a rater other than the gateway (``non_self_submitter``)."""


class UntrustedPeersError(DispatchRefusedError):
    """No candidate peer passes the trust filter, so nothing was dispatched.

    A peer is filtered out when its ``dispatch_allowed`` is false or its ``honesty_score``
    is below the ``min_honesty`` the caller asked for.
    """


class PlainTextGatewayInternalError(GatewayInternalError, GatewayProtocolError):
    """A plain-text 500 from an ``/api/*`` route."""


class PlainTextWorkerUnreachableError(WorkerUnreachableError, GatewayProtocolError):
    """A plain-text 500 ``Failed to connect to worker …`` (or a plain 502)."""


class PlainTextWorkerStreamError(WorkerStreamError, GatewayProtocolError):
    """A plain-text 500 ``Failed to send prompt`` / ``Failed to half-close …``."""


class AgentFMRoutingWarning(UserWarning):
    """An OpenAI-style ``model`` is not a peer id, so the gateway picks the worker."""


_CODE_MAP: dict[str, type[AgentFMError]] = {
    "model_not_found": ModelNotFoundError,
    "mesh_overloaded": MeshOverloadedError,
    "async_capacity_exhausted": AsyncCapacityError,
    "rate_limited": RateLimitError,
    "worker_unreachable": WorkerUnreachableError,
    "worker_stream_failed": WorkerStreamError,
    "model_required": InvalidRequestError,
    "prompt_required": InvalidRequestError,
    "unsupported_prompt_type": InvalidRequestError,
    "invalid_request_error": InvalidRequestError,
    "method_not_allowed": InvalidRequestError,
    "bad_request": InvalidRequestError,
    "bad_peer_id": InvalidRequestError,
    "internal_error": GatewayInternalError,
    "unauthorized": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "ledger_unavailable": LedgerUnavailableError,
    "comments_unavailable": LedgerUnavailableError,
    "host_unavailable": LedgerUnavailableError,
    "not_implemented": LedgerUnavailableError,
    "entry_not_found": LedgerNotFoundError,
    "comment_not_found": LedgerNotFoundError,
    "bad_signature": SignatureRejectedError,
    "non_self_submitter": NotSelfSubmitterError,
    "bad_cid": InvalidRequestError,
    "bad_json": InvalidRequestError,
    "missing_field": InvalidRequestError,
    "body_too_large": InvalidRequestError,
    "bad_rating": InvalidRequestError,
    "read_body": InvalidRequestError,
    "store_body": InvalidRequestError,
    "gather_error": GatewayInternalError,
    "ledger_error": GatewayInternalError,
    "prove_error": GatewayInternalError,
    "append_failed": GatewayInternalError,
    "store_error": GatewayInternalError,
}


def error_class_for_code(code: str | None) -> type[AgentFMError] | None:
    """Return the class mapped to a gateway error ``code``, or None when unknown."""
    if code is None:
        return None
    return _CODE_MAP.get(code)


def from_envelope(body: Any, status: int | None = None) -> AgentFMError:
    """Build the typed error for an OpenAI-style ``{"error": {...}}`` envelope.

    Args:
        body: The decoded JSON body.
        status: The HTTP status, when known.

    Returns:
        The error to raise; unknown codes give the base `AgentFMError`.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return GatewayProtocolError(f"unparseable error envelope (HTTP {status})", status=status)
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else "unknown error"
    cls = error_class_for_code(code) or AgentFMError
    return cls(str(message), code=code, status=status)
