"""Multi-step calls as generators ("flows"), performed by a sync and an async driver.

A flow holds every decision of a multi-step call (poll until a deadline, page through a
log, run a task with failover, collect its artifacts) and yields the I/O it needs as a
*step*. A driver performs the step and sends its result back in, or throws the step's
error in, and the flow decides what that means. httpx's ``Auth.auth_flow`` is the model.
A flow never blocks and never awaits, so the sync and the async client run the very same
flow, and the two sides cannot drift.

The steps every client performs live here: a `RequestSpec` (send it with the client's
retries; the reply is the decoded JSON body), `Sleep` and `Emit` (hand an item to the
caller of a streaming flow). The task resource adds its own steps in
`agentfm._task_steps`. Flows compose with ``yield from``. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agentfm._base_client import RequestSpec

__all__ = ["Emit", "Flow", "Pump", "Sleep", "Step"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (the async driver yields to the event loop)."""

    seconds: float


@dataclass(frozen=True)
class Emit(Generic[T]):
    """Hand ``value`` to the caller of a streaming flow."""

    value: T


Step = RequestSpec | Sleep | Emit[Any]
"""The steps every client performs; a `RequestSpec` is answered with its JSON body."""

Flow = Generator[RequestSpec | Sleep | Emit[T], Any, R]
"""A flow emitting ``T`` items and returning ``R``."""


class Pump(Generic[R]):
    """Advance one flow for a driver: send it a reply or throw an error in, take its next step.

    The driver performs each step and hands back the outcome with `send` or `throw`;
    `next` passes it on. Once the flow returns, `next` gives None and `result` holds what
    it returned. Keeping the stepping here leaves each driver a loop of a few lines.
    """

    def __init__(self, flow: Generator[Any, Any, R]) -> None:
        self._flow = flow
        self._reply: Any = None
        self._error: BaseException | None = None
        self.result: R

    def next(self) -> Any:
        """The flow's next step, or None once it has returned."""
        reply, error = self._reply, self._error
        self._reply = self._error = None
        try:
            if error is not None:
                return self._flow.throw(error)
            return self._flow.send(reply)
        except StopIteration as stop:
            self.result = stop.value
            return None

    def send(self, reply: Any) -> None:
        """The outcome of the last step: its reply."""
        self._reply = reply

    def throw(self, error: BaseException) -> None:
        """The outcome of the last step: it raised ``error`` (raised in the flow next)."""
        self._error = error

    def close(self) -> None:
        """Stop the flow where it is (its ``with`` blocks and ``finally`` clauses run)."""
        self._flow.close()
