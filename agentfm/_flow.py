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
