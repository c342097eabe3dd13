"""Fixtures for the LlamaIndex integration: a purpose-built mesh next to the demo one."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agentfm.mesh import AgentContext, EmbeddedMesh

# Longest a "gate" task waits for its siblings before giving up; a serial caller never
# reaches the target, so this bounds how long a broken overlap test takes to fail.
GATE_PATIENCE_S = 20.0

# A 1x1 transparent PNG.
PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


class Concurrency:
    """Counts tasks in flight inside an agent and remembers the peak."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.target = 1
        self.calls = 0

    def reset(self, target: int) -> None:
        with self._lock:
            self.in_flight = 0
            self.peak = 0
            self.calls = 0
            self.target = target

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.calls += 1
            self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


@pytest.fixture(scope="session")
def concurrency() -> Concurrency:
    """The shared in-flight counter of the `gate` agent."""
    return Concurrency()


@pytest.fixture(scope="session")
def li_mesh(concurrency: Concurrency) -> Iterator[EmbeddedMesh]:
    """A mesh with the agents these tests need.

    * `gate` (max 8 tasks): each task waits until `concurrency.target` tasks are in flight,
      so a peak of 8 proves 8 calls overlapped on the server.
    * three `flaky` workers (engine `flaky`): two echo, one breaks every stream.
    * `broken`: breaks every stream.
    * `painter`: writes `plot.png` as an artifact.
    * `parrot`: answers with the exact prompt it received, JSON-encoded on one line.
    """
    from agentfm.mesh import BreakStream, CallableAgent, EmbeddedMesh, WorkerConfig

    async def gate(prompt: str, ctx: AgentContext) -> str:
        concurrency.enter()
        try:
            deadline = time.monotonic() + GATE_PATIENCE_S
            # Polled rather than an asyncio.Event: the mesh may run agents on another loop.
            while concurrency.in_flight < concurrency.target and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            return f"gate:{prompt}\n"
        finally:
            concurrency.leave()

    def echo(prompt: str, ctx: AgentContext) -> str:
        return f"{prompt}\n"

    def fail(prompt: str, ctx: AgentContext) -> str:
        raise BreakStream

    def paint(prompt: str, ctx: AgentContext) -> str:
        (Path(ctx.output_dir) / "plot.png").write_bytes(PNG_BYTES)
        return f"painted {prompt}\n"

    def parrot(prompt: str, ctx: AgentContext) -> str:
        return json.dumps(prompt) + "\n"

    workers = [
        WorkerConfig("gate", "gate", CallableAgent(gate), max_tasks=8),
        WorkerConfig("flaky-a", "flaky", CallableAgent(echo), max_tasks=4),
        WorkerConfig("flaky-b", "flaky", CallableAgent(echo), max_tasks=4),
        WorkerConfig("flaky-bad", "flaky", CallableAgent(fail), max_tasks=4),
        WorkerConfig("broken", "broken", CallableAgent(fail), max_tasks=2),
        WorkerConfig("painter", "painter", CallableAgent(paint), max_tasks=2),
        WorkerConfig("parrot", "parrot", CallableAgent(parrot), max_tasks=2),
    ]
    with EmbeddedMesh(workers=workers) as mesh:
        yield mesh
