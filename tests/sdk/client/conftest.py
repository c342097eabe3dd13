"""A second embedded mesh with workers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agentfm.mesh import AgentContext, BreakStream, CallableAgent, EmbeddedMesh, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

WIDE = 64


class Gate:
    """Lets a test hold a worker busy, and counts concurrent tasks."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def reset(self) -> None:
        self.release.clear()
        self.entered.clear()
        with self.lock:
            self.now = self.peak = 0


GATE = Gate()


def _hold(prompt: str, ctx: AgentContext) -> str:
    GATE.entered.set()
    GATE.release.wait(30)
    return f"held {prompt}\n"


def _break(prompt: str, ctx: AgentContext) -> Iterator[str]:
    yield "first line\n"
    yield "half a li"
    raise BreakStream


def _files(prompt: str, ctx: AgentContext) -> str:
    (Path(ctx.output_dir) / "out.txt").write_text(prompt)
    (Path(ctx.output_dir) / "nested").mkdir()
    (Path(ctx.output_dir) / "nested" / "b.txt").write_text("b")
    return f"wrote files for {ctx.task_id}\n"


async def _wide(prompt: str, ctx: AgentContext) -> str:
    with GATE.lock:
        GATE.now += 1
        GATE.peak = max(GATE.peak, GATE.now)
    try:
        # Hold every task until WIDE of them run at once (or give up after a while),
        # so the peak shows how many the client really had in flight.
        for _ in range(2000):
            if GATE.peak >= WIDE:
                break
            await asyncio.sleep(0.01)
        return f"wide {prompt}\n"
    finally:
        with GATE.lock:
            GATE.now -= 1


async def _slow(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    yield "starting\n"
    await asyncio.sleep(30)
    yield "done\n"


def _fail(prompt: str, ctx: AgentContext) -> str:
    raise RuntimeError("agent crashed")


@pytest.fixture(scope="session")
def edge_mesh() -> Iterator[EmbeddedMesh]:
    workers = [
        WorkerConfig("holder", "hold", CallableAgent(_hold), max_tasks=1),
        WorkerConfig("breaker", "break", CallableAgent(_break), max_tasks=4),
        WorkerConfig("files", "files", CallableAgent(_files), max_tasks=4),
        WorkerConfig("wide", "wide", CallableAgent(_wide), max_tasks=WIDE),
        WorkerConfig("slow", "slow", CallableAgent(_slow), max_tasks=4),
        WorkerConfig("crasher", "crash", CallableAgent(_fail), max_tasks=4),
    ]
    with EmbeddedMesh(workers) as mesh:
        yield mesh


@pytest.fixture
def gate() -> Iterator[Gate]:
    GATE.reset()
    yield GATE
    GATE.release.set()


@pytest.fixture(params=["sync", "async"])
async def edge_client(
    request: pytest.FixtureRequest, edge_mesh: EmbeddedMesh, tmp_path: Path
) -> AsyncIterator[Any]:
    """Sync and async clients bound to the edge mesh."""
    from agentfm import AgentFMClient, AsyncAgentFMClient

    if request.param == "sync":
        with AgentFMClient(edge_mesh.url, artifacts_dir=tmp_path / "artifacts", api_key=None) as c:
            yield c
    else:
        async with AsyncAgentFMClient(
            edge_mesh.url, artifacts_dir=tmp_path / "artifacts", api_key=None
        ) as c:
            yield c
