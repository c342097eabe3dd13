"""Multi-step calls as generators ("flows"), performed by a sync and an async driver.

A flow holds every decision of a multi-step call and yields the I/O it needs as a *step*
(`Sleep`, `RunTask`, `Download`…). A driver performs the step and sends its result back
in, or throws the step's error in, and the flow decides what that means. httpx's
``Auth.auth_flow`` is the model. A flow never blocks and never awaits, so the sync and the
async client run the very same flow; `agentfm.resources._task_drivers` holds the two
drivers, loops of a few lines that only perform steps.

Flows compose with ``yield from``; a flow that streams yields `Emit` for each item its
caller should see.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pathlib import Path

    from agentfm._base_client import RequestSpec
    from agentfm.artifacts import ArtifactManager

__all__ = [
    "Collect",
    "Download",
    "Emit",
    "Extract",
    "FetchWorkers",
    "Flow",
    "MatchWorkers",
    "NoArtifactRoute",
    "OpenTask",
    "Pull",
    "Pump",
    "ReadTask",
    "RunTask",
    "SendJson",
    "Sleep",
    "Step",
]

R = TypeVar("R")


@dataclass(frozen=True)
class Sleep:
    """Wait ``seconds`` (the async driver yields to the event loop)."""

    seconds: float


@dataclass(frozen=True)
class Emit:
    """Hand ``item`` to the caller of a streaming flow."""

    item: Any


@dataclass(frozen=True)
class SendJson:
    """Send ``spec`` (with the client's retries) and reply with the decoded JSON body."""

    spec: RequestSpec


@dataclass(frozen=True)
class FetchWorkers:
    """Reply with the live workers (``client.workers``)."""


@dataclass(frozen=True)
class MatchWorkers:
    """Reply with the live workers matching ``model`` (``client.workers.match``)."""

    model: str
    min_honesty: float | None


@dataclass(frozen=True)
class RunTask:
    """Reply with ``tasks.run(**kwargs)`` (looked up on the instance: it may be replaced)."""

    kwargs: dict[str, Any]


@dataclass(frozen=True)
class ReadTask:
    """Reply with ``(stream, text)``: ``tasks.stream(**kwargs)`` read to its end, closed."""

    kwargs: dict[str, Any]


@dataclass(frozen=True)
class OpenTask:
    """Reply with ``tasks.stream(**kwargs)``; the driver closes it when the flow ends."""

    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Pull:
    """Reply with the next item of ``stream`` (opened by `OpenTask`), or None at its end."""

    stream: Any


@dataclass(frozen=True)
class Collect:
    """Reply with ``tasks.collect_artifacts(task_id, timeout=timeout)``."""

    task_id: str
    timeout: float


@dataclass(frozen=True)
class Download:
    """Stream the body of ``spec`` into ``target`` (removed again if the download fails)."""

    spec: RequestSpec
    target: Path


@dataclass(frozen=True)
class Extract:
    """Extract ``zip_path`` for ``task_id``, then delete it; reply with the files.

    With ``if_present``, reply None when there is no such zip (yet).
    """

    manager: ArtifactManager
    zip_path: Path
    task_id: str
    if_present: bool = False


@dataclass(frozen=True)
class NoArtifactRoute:
    """Remember, for the client's later tasks, that its gateway serves no artifacts."""


Step = (
    Sleep
    | Emit
    | SendJson
    | FetchWorkers
    | MatchWorkers
    | RunTask
    | ReadTask
    | OpenTask
    | Pull
    | Collect
    | Download
    | Extract
    | NoArtifactRoute
)
"""Every step a flow may yield; the drivers perform each one."""

Flow = Generator[Step, Any, R]
"""A flow that ends with an ``R`` (the generator's return value)."""


class Pump(Generic[R]):
    """Advance one flow for a driver: send it a reply or throw an error in, take its next step.

    The driver performs each step and hands back the outcome with `send` or `throw`;
    `next` passes it on. Once the flow returns, `next` gives None and `result` holds
    what it returned.
    """

    def __init__(self, flow: Flow[R]) -> None:
        self._flow = flow
        self._reply: Any = None
        self._error: BaseException | None = None
        self.result: R

    def next(self) -> Step | None:
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
