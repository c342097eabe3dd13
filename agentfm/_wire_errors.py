"""Typed errors of the wire: a response or a transport failure turned into `AgentFMError`.

Pure: the clients, the scatter fast path and the decoders ask it what a status, a body or
an httpx exception means. `agentfm._base_client` re-exports every name.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import TYPE_CHECKING, Any, Literal

import httpx

from agentfm._redact import redact_text, redact_url
from agentfm.exceptions import (
    AgentFMError,
    AgentFMTimeoutError,
    AuthenticationError,
    GatewayConnectionError,
    GatewayInternalError,
    GatewayProtocolError,
    InvalidRequestError,
    PlainTextDispatchRefusedError,
    PlainTextGatewayInternalError,
    PlainTextInvalidRequestError,
    PlainTextWorkerStreamError,
    PlainTextWorkerUnreachableError,
    RateLimitError,
    WorkerNotFoundError,
    WorkerStreamError,
    WorkerUnreachableError,
    error_class_for_code,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "IDLE_EXTENSION",
    "MUX_NOT_FOUND",
    "call_timeout_error",
    "connect_timeout_error",
    "connection_error",
    "decode_json",
    "error_from_response",
    "error_from_transport",
    "idle_timeout_error",
    "output_too_large_error",
    "parse_retry_after",
]

MUX_NOT_FOUND = "404 page not found"
"""Body of Go's default mux 404: the route does not exist on this gateway."""

IDLE_EXTENSION = "agentfm.idle_timeout"
"""The request extension carrying a stream's idle bound, so a read timeout is named after it."""


def idle_timeout_error(seconds: float) -> AgentFMTimeoutError:
    """The error of a task stream that sent no byte for ``idle_timeout`` seconds."""
    return AgentFMTimeoutError(
        f"no data from the gateway for {seconds:g}s (idle_timeout={seconds:g}; raise it, "
        "or pass idle_timeout=None for no bound)",
        code="timeout",
    )


def call_timeout_error(seconds: float | None) -> AgentFMTimeoutError:
    """The error of a call that did not finish within its ``timeout=``."""
    return AgentFMTimeoutError(f"the call did not finish within {seconds}s", code="timeout")


def connect_timeout_error(gateway_url: str, detail: str) -> AgentFMTimeoutError:
    """A timeout before anything was sent (connect or pool)."""
    return AgentFMTimeoutError(
        f"timed out talking to the gateway at {redact_url(gateway_url)} ({detail})",
        code="timeout",
    )


def connection_error(
    gateway_url: str, detail: str, *, phase: Literal["request", "body"] = "request"
) -> AgentFMError:
    """A broken or refused connection; ``phase="body"`` once the response had started."""
    url = redact_url(gateway_url)
    if phase == "body":
        return WorkerStreamError(
            f"the stream from {url} broke: {redact_text(detail)}", code="worker_stream_failed"
        )
    return GatewayConnectionError(
        f"could not reach the gateway at {url}: {redact_text(detail)}", code="connection_error"
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header (delta seconds or HTTP date) into seconds from now."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        reference = time.time() if now is None else now
        seconds = when.timestamp() - reference
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def decode_json(response: httpx.Response) -> Any:
    """Decode a JSON body, turning a malformed one into `GatewayProtocolError`."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayProtocolError(
            f"gateway sent invalid JSON (HTTP {response.status_code}): {exc}",
            status=response.status_code,
            response=response,
        ) from None


_STATUS_FALLBACK: dict[int, type[AgentFMError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PlainTextDispatchRefusedError,
    405: InvalidRequestError,
    429: RateLimitError,
    500: GatewayInternalError,
    502: WorkerUnreachableError,
}

_PLAIN_500_WORKER_STREAM = (
    "Failed to set write deadline",
    "Failed to send prompt",
    "Failed to half-close",
)


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    response: httpx.Response | None = None,
) -> AgentFMError:
    """Map a non-2xx response to the typed error: gateway ``code`` first, then status.

    Args:
        status: HTTP status.
        headers: Response headers (``Content-Type``, ``Retry-After``).
        body: The response body.
        response: The response, attached to the error for inspection.
    """
    retry_after = parse_retry_after(headers.get("retry-after"))
    text = body.decode("utf-8", errors="replace")
    content_type = headers.get("content-type", "")
    envelope: Any = None
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            envelope = json.loads(text)
        except ValueError:
            envelope = None
    common: dict[str, Any] = {"status": status, "response": response, "retry_after": retry_after}
    if isinstance(envelope, dict) and isinstance(envelope.get("error"), dict):
        error = envelope["error"]
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        cls = error_class_for_code(code) or _json_status_class(status)
        return cls(message or f"gateway error (HTTP {status})", code=code, **common)
    message = text.strip()[:500] or f"HTTP {status}"
    if status in (400, 405):
        return PlainTextInvalidRequestError(message, code="invalid_request", **common)
    if status == 403:
        return PlainTextDispatchRefusedError(message, code="dispatch_refused", **common)
    if status == 404:
        if message == MUX_NOT_FOUND:
            return GatewayProtocolError(
                f"route not found on this gateway ({message})", code="route_not_found", **common
            )
        return WorkerNotFoundError(message, code="worker_not_found", **common)
    # Plain-text 5xx: 0.3.0 raised GatewayProtocolError; the dual classes keep that true
    # while saying what failed.
    if status == 500:
        if message.startswith("Failed to connect to worker"):
            return PlainTextWorkerUnreachableError(message, code="worker_unreachable", **common)
        if message.startswith(_PLAIN_500_WORKER_STREAM):
            return PlainTextWorkerStreamError(message, code="worker_stream_failed", **common)
        return PlainTextGatewayInternalError(
            f"unexpected status {status}: {message[:200]}", **common
        )
    if status == 502:
        return PlainTextWorkerUnreachableError(
            f"unexpected status {status}: {message[:200]}", **common
        )
    if status >= 500:
        return GatewayProtocolError(f"unexpected status {status}: {message[:200]}", **common)
    cls = _STATUS_FALLBACK.get(status, GatewayProtocolError)
    return cls(f"unexpected status {status}: {message[:200]}", **common)


def _json_status_class(status: int) -> type[AgentFMError]:
    cls = _STATUS_FALLBACK.get(status, AgentFMError)
    # A JSON 403 is an envelope, not a plain-text protocol surprise.
    if status == 403:
        from agentfm.exceptions import DispatchRefusedError

        return DispatchRefusedError
    return cls


_NEVER_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


def _idle_of(exc: httpx.TimeoutException) -> float | None:
    try:
        value = exc.request.extensions.get(IDLE_EXTENSION)
    except RuntimeError:  # an exception raised without a request attached
        return None
    return value if isinstance(value, (int, float)) else None


def error_from_transport(
    exc: Exception,
    *,
    gateway_url: str,
    phase: Literal["request", "stream", "body"] = "request",
) -> AgentFMError:
    """Map an httpx transport failure to the typed error.

    ``phase="body"`` means the response had started (status received), so a broken
    connection is a failed worker stream rather than an unreachable gateway.
    ``phase="stream"`` is the request of a task stream: once it was sent, a broken
    connection (``RemoteProtocolError``, ``ReadError``) is a failed worker stream too,
    as in 0.3.0; only a connection that never opened means the gateway is unreachable.
    """
    error: AgentFMError
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        error = InvalidRequestError(
            f"invalid gateway URL {redact_url(gateway_url)!r}: {redact_text(detail)}",
            code="invalid_gateway_url",
        )
    elif isinstance(exc, httpx.ReadTimeout) and _idle_of(exc) is not None:
        error = idle_timeout_error(_idle_of(exc) or 0.0)
    elif isinstance(exc, httpx.TimeoutException):
        error = connect_timeout_error(gateway_url, type(exc).__name__)
    elif phase == "body" or (phase == "stream" and not isinstance(exc, _NEVER_SENT)):
        error = connection_error(gateway_url, detail, phase="body")
    else:
        error = connection_error(gateway_url, detail)
    error.request_sent = not isinstance(exc, _NEVER_SENT)
    return error


def output_too_large_error(limit: int) -> AgentFMError:
    """The error of a task whose output passed ``max_output_bytes``."""
    from agentfm.exceptions import OutputTooLargeError

    error = OutputTooLargeError(
        f"the task's output passed max_output_bytes={limit}; the stream was closed",
        code="output_too_large",
    )
    error.task_started = True
    return error
