"""What an attempt's error means for the batch: final, overload, unreachable, or retry."""

from __future__ import annotations

from agentfm.exceptions import (
    AgentFMError,
    AgentFMTimeoutError,
    ArtifactError,
    AsyncCapacityError,
    AuthenticationError,
    GatewayConnectionError,
    InvalidRequestError,
    MeshOverloadedError,
    ModelNotFoundError,
    RateLimitError,
    WorkerStreamError,
)

__all__ = ["ends_batch", "is_gateway_unreachable", "is_overload", "is_redispatchable"]

# Errors another attempt cannot fix, whichever peer it goes to.
_FINAL = (
    InvalidRequestError,
    AuthenticationError,
    ArtifactError,
    RateLimitError,
    ModelNotFoundError,
)


def is_overload(exc: AgentFMError) -> bool:
    """Whether the gateway (not the peer) asked to slow down: 503 overload, ``Retry-After``.

    A 429 ``rate_limited`` is not an overload: the gateway limits failed auth attempts,
    and repeating one cannot succeed (it is final, see `ends_batch`).
    """
    if isinstance(exc, RateLimitError) or exc.code == "rate_limited":
        return False
    if isinstance(exc, (MeshOverloadedError, AsyncCapacityError)):
        return True
    return exc.status in (429, 503) and exc.retry_after is not None


def is_gateway_unreachable(exc: AgentFMError) -> bool:
    """Whether the gateway itself could not be reached (not a timeout, not a worker fault)."""
    return isinstance(exc, GatewayConnectionError) and not isinstance(
        exc, (AgentFMTimeoutError, WorkerStreamError)
    )


def ends_batch(exc: AgentFMError) -> bool:
    """Whether this answer dooms every other request of the batch too (a bad key, a lockout)."""
    return isinstance(exc, (AuthenticationError, RateLimitError)) or exc.code == "rate_limited"


def is_redispatchable(exc: AgentFMError) -> bool:
    """Whether a failed attempt may be sent again, to another peer when there is one.

    This is the one failover policy of the SDK: scatter and the single routed calls
    (``tasks.run(model=…)`` / ``tasks.stream(model=…)``) both ask it, within the caller's
    ``max_retries``.

    Sent again: a task that failed on a peer (a broken or cut stream, a rejection, an
    agent that exited non-zero, was killed or could not start, an unreachable or missing
    worker, a 5xx) and a gateway that could not be reached. Final: errors another peer
    cannot fix (a bad request, a bad key, ``rate_limited``, an unknown model), and a task
    that completed but whose files could not be collected (re-running it would repeat
    finished work).
    """
    if exc.code == "rate_limited":
        return False
    return not isinstance(exc, _FINAL)
