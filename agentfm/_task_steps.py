"""The steps of the task flows (`agentfm._task_flows`, `agentfm._artifact_flow`).

Besides the steps every client performs (`agentfm._flow`), a task flow asks its driver to
run or stream other tasks, match workers, download and extract artifacts. The drivers in
`agentfm.resources._task_drivers` perform each one.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agentfm._flow import Step

if TYPE_CHECKING:
    from pathlib import Path

    from agentfm._base_client import RequestSpec
    from agentfm.artifacts import ArtifactManager

__all__ = [
    "Collect",
    "Download",
    "Extract",
    "FetchWorkers",
    "MatchWorkers",
    "NoArtifactRoute",
    "OpenTask",
    "Pull",
    "ReadTask",
    "RunTask",
    "TaskFlow",
    "TaskStep",
]

R = TypeVar("R")


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


TaskStep = (
    Step
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
"""Every step a task flow may yield; the task drivers perform each one."""

TaskFlow = Generator[TaskStep, Any, R]
"""A task flow that ends with an ``R`` (the generator's return value)."""
