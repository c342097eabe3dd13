"""Multi-step flows: generators that say what to do, driven by both clients.

A call of several steps (poll until a deadline, page through a log) is a *flow*: a
generator that yields what it needs done (`RequestSpec`: send it and send back its JSON
body; `Sleep`; `Emit`: hand an item to the caller) and returns its result, as httpx's
``Auth.auth_flow`` yields requests. The sync and async clients each drive every flow with
one short loop (``drive`` / ``iterate``), so the two sides cannot drift. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agentfm._base_client import RequestSpec

__all__ = ["Emit", "Flow", "Sleep", "Step"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Sleep:
    """A flow step: wait this many seconds."""

    seconds: float


@dataclass(frozen=True)
class Emit(Generic[T]):
    """A flow step: hand ``value`` to the caller of ``iterate``."""

    value: T


Step = RequestSpec | Sleep | Emit[Any]
"""What a flow yields; a `RequestSpec` step is answered with the decoded JSON body."""

Flow = Generator[RequestSpec | Sleep | Emit[T], Any, R]
"""A flow emitting ``T`` items and returning ``R``."""


class FlowRun(Generic[T, R]):
    """One flow being driven: the drivers ask it for the next step and answer it.

    Keeping the stepping here leaves each client's driver a loop of a few lines that only
    performs the steps (sends, sleeps), so the sync and async drivers cannot drift.
    """

    def __init__(self, flow: Flow[T, R]) -> None:
        self._flow = flow
        self._reply: Any = None
        self.result: R | None = None
        """What the flow returned, once `next` gave None."""

    def next(self) -> Step | None:
        """The next step, or None once the flow returned (see `result`)."""
        try:
            step = self._flow.send(self._reply)
        except StopIteration as stop:
            self.result = stop.value
            return None
        self._reply = None
        return step

    def answer(self, reply: Any) -> None:
        """Answer the step just taken (the JSON body of a request)."""
        self._reply = reply

    def close(self) -> None:
        """Stop the flow (the caller stopped early or a step failed)."""
        self._flow.close()
