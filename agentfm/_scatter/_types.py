"""Scatter's values: what the scheduler hands the driver, what comes back, and its state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from agentfm.exceptions import AgentFMError

__all__ = ["BENCH_FIRST", "AttemptOutcome", "Dispatch"]

BENCH_FIRST = 2.0  # seconds a failing peer is benched first; doubles on every failed probe


@dataclass(frozen=True)
class Dispatch:
    """One attempt the driver must run: prompt ``index`` on ``peer_id`` after ``delay`` s."""

    index: int
    prompt: str
    peer_id: str
    attempt: int
    delay: float = 0.0
    hedge: bool = False


@dataclass
class AttemptOutcome:
    """What one attempt produced (``error`` set on failure)."""

    text: str = ""
    artifacts: list[Path] = field(default_factory=list)
    task_id: str | None = None
    error: AgentFMError | None = None
    duration: float = 0.0


class _Item:
    __slots__ = (
        "attempts",
        "done",
        "first_start",
        "hedged",
        "index",
        "live",
        "overloads",
        "prompt",
        "tried",
    )

    def __init__(self, index: int, prompt: str) -> None:
        self.index = index
        self.prompt = prompt
        self.attempts = 0
        self.tried: list[str] = []
        self.live = 0
        self.done = False
        self.hedged = False
        self.overloads = 0
        self.first_start: float | None = None


class _Peer:
    __slots__ = (
        "bench",
        "benched_until",
        "consecutive",
        "failures",
        "gone",
        "latency",
        "limit",
        "others",
        "own",
        "peer_id",
        "position",
        "probing",
        "successes",
    )

    def __init__(self, peer_id: str, position: int) -> None:
        self.peer_id = peer_id
        self.position = position
        self.limit: int | None = None
        self.others = 0
        self.own = 0
        self.latency: float | None = None
        self.successes = 0
        self.failures = 0
        self.consecutive = 0
        self.benched_until = 0.0
        self.bench = BENCH_FIRST
        self.probing = False
        self.gone = False  # the gateway answered 404 "Worker not found" for it

    def free(self) -> int:
        if self.limit is None:
            return 1 << 30
        return self.limit - self.others - self.own

    def failure_rate(self) -> float:
        # One imaginary success keeps a single early failure from looking like 100%.
        return self.failures / (self.failures + self.successes + 1)


class _Attempt:
    __slots__ = ("dispatch", "item", "peer", "start")

    def __init__(self, dispatch: Dispatch, item: _Item, peer: _Peer, start: float) -> None:
        self.dispatch = dispatch
        self.item = item
        self.peer = peer
        self.start = start
