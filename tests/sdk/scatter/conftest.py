"""A mesh whose workers fail in every way scatter must survive, and clients bound to it."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from agentfm.mesh import AgentContext, BreakStream, CallableAgent, EmbeddedMesh, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

REJECTION = "❌ ERROR: Worker is at max capacity (1/1). Try another worker.\n"


class Runs:
    """Counts task starts per worker name (agents run on the mesh's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def hit(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


RUNS = Runs()


def _good(name: str) -> Any:
    async def agent(prompt: str, ctx: AgentContext) -> str:
        RUNS.hit(name)
        await asyncio.sleep(0.005)
        return f"done {prompt}\n"

    return agent


async def _broken(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    RUNS.hit("broken")
    yield f"working on {prompt}\n"
    raise BreakStream


async def _rejecting(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    # Exactly what a worker at capacity writes: one rejection line, no terminal marker.
    RUNS.hit("rejecting")
    yield REJECTION
    raise BreakStream


async def _sloth(prompt: str, ctx: AgentContext) -> str:
    RUNS.hit("sloth")
    await asyncio.sleep(60)  # cancelled when the client drops the request
    return f"done {prompt}\n"


@pytest.fixture(scope="module")
def mesh() -> Iterator[EmbeddedMesh]:
    """Three good workers, one that breaks every stream, one that rejects, one that stalls."""
    workers = [
        *(
            WorkerConfig(f"good{n}", "good", CallableAgent(_good(f"good{n}")), max_tasks=4)
            for n in range(3)
        ),
        WorkerConfig("broken", "bad", CallableAgent(_broken), max_tasks=4),
        WorkerConfig("rejecting", "bad", CallableAgent(_rejecting), max_tasks=4),
        WorkerConfig("sloth", "slow", CallableAgent(_sloth), max_tasks=4),
    ]
    with EmbeddedMesh(workers, api_keys=[], graceful_timeout=1.0) as running:
        yield running


@pytest.fixture
def runs() -> Runs:
    """Per-worker task counts, reset for each test."""
    RUNS.reset()
    return RUNS


@pytest.fixture
def peers(mesh: EmbeddedMesh) -> dict[str, str]:
    """Worker name -> peer id."""
    return {w.name: w.peer_id for w in mesh.workers}


@pytest.fixture(params=["sync", "async"])
async def scatter_client(
    request: pytest.FixtureRequest, mesh: EmbeddedMesh, tmp_path: Path
) -> AsyncIterator[Any]:
    """The sync and the async client on the test mesh; drive calls with ``tests.helpers.call``."""
    from agentfm import AgentFMClient, AsyncAgentFMClient

    if request.param == "sync":
        with AgentFMClient(mesh.url, artifacts_dir=tmp_path, api_key=None) as c:
            yield c
    else:
        async with AsyncAgentFMClient(mesh.url, artifacts_dir=tmp_path, api_key=None) as c:
            yield c


@pytest.fixture(params=["lean", "httpx"])
def transport_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run scatter over its lean connection pool, then over the regular httpx client."""
    if request.param == "httpx":
        monkeypatch.setattr("agentfm._fast_path.supports", lambda url, **_: False)
    return str(request.param)
