"""Fixtures for the LangChain integration: a mesh with a peer that fails every task."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from agentfm import AgentFMClient, AsyncAgentFMClient
    from agentfm.mesh import AgentContext, EmbeddedMesh

ENGINE = "echo-lc"
"""Engine shared by the healthy echo peers and the broken one on `failing_mesh`."""


class FlakyLedger:
    """Remembers which prompts already failed once, so a retry of them succeeds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def first_time(self, prompt: str) -> bool:
        with self._lock:
            if prompt in self._seen:
                return False
            self._seen.add(prompt)
            return True


@pytest.fixture(scope="session")
def flaky_ledger() -> FlakyLedger:
    return FlakyLedger()


@pytest.fixture(scope="session")
def task_log() -> list[str]:
    """Every prompt the `count` worker of `failing_mesh` ran, in order."""
    return []


@pytest.fixture(scope="session")
def failing_mesh(flaky_ledger: FlakyLedger, task_log: list[str]) -> Iterator[EmbeddedMesh]:
    """Three healthy echo peers and one that breaks every stream, all with engine `ENGINE`.

    Healthy peers also break any prompt containing ``FAIL`` (so such an item fails on every
    peer), and the ``flaky`` worker breaks a ``FLAKY`` prompt only the first time it sees it.
    """
    from agentfm.mesh import BreakStream, CallableAgent, EmbeddedMesh, WorkerConfig

    async def echo(prompt: str, ctx: AgentContext) -> str:
        if "FAIL" in prompt:
            raise BreakStream
        await asyncio.sleep(0.01)
        return f"echo: {prompt}\n"

    async def broken(prompt: str, ctx: AgentContext) -> str:
        raise BreakStream

    async def flaky(prompt: str, ctx: AgentContext) -> str:
        if "FLAKY" in prompt and flaky_ledger.first_time(prompt):
            raise BreakStream
        return f"flaky: {prompt}\n"

    async def count(prompt: str, ctx: AgentContext) -> str:
        task_log.append(prompt)
        return f"counted: {prompt}\n"

    workers = [
        WorkerConfig(f"echo{i}", ENGINE, CallableAgent(echo), max_tasks=4, seed=f"lc-echo-{i}")
        for i in range(3)
    ]
    workers.append(
        WorkerConfig("broken", ENGINE, CallableAgent(broken), max_tasks=4, seed="lc-broken")
    )
    workers.append(
        WorkerConfig("flaky", "flaky", CallableAgent(flaky), max_tasks=4, seed="lc-flaky")
    )
    workers.append(
        WorkerConfig("count", "count", CallableAgent(count), max_tasks=8, seed="lc-count")
    )
    with EmbeddedMesh(workers=workers) as mesh:
        yield mesh


@pytest.fixture
def fclient(failing_mesh: EmbeddedMesh, tmp_path: Path) -> Iterator[AgentFMClient]:
    """A sync client on `failing_mesh`."""
    from agentfm import AgentFMClient

    with AgentFMClient(failing_mesh.url, api_key=None, artifacts_dir=tmp_path / "artifacts") as c:
        yield c


@pytest.fixture
async def afclient(failing_mesh: EmbeddedMesh, tmp_path: Path) -> AsyncIterator[AsyncAgentFMClient]:
    """An async client on `failing_mesh`."""
    from agentfm import AsyncAgentFMClient

    async with AsyncAgentFMClient(
        failing_mesh.url, api_key=None, artifacts_dir=tmp_path / "artifacts"
    ) as c:
        yield c


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> str:
    """Per-test folder where produced files are extracted."""
    return str(tmp_path / "artifacts")


class ScatterSpy:
    """Wrap an SDK client's ``tasks.scatter_iter`` to count scatters and their sizes."""

    def __init__(self, client: Any) -> None:
        self.calls: list[int] = []
        original = client.tasks.scatter_iter

        def spy(prompts: Any, **kwargs: Any) -> Any:
            self.calls.append(len(prompts))
            return original(prompts, **kwargs)

        client.tasks.scatter_iter = spy
