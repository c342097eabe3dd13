"""The embedded mesh under hostile agents and hostile clients (issue #15 items 10-12).

Real parts only: an `EmbeddedMesh` on loopback, the SDK client, raw sockets for the
half-sent heads, and a mesh in a subprocess for the SIGKILL case.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

import pytest

from agentfm import AgentFMClient, AsyncAgentFMClient
from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import Callable

# More than the default `asyncio.to_thread` pool holds on a 2-core machine (cpu + 4 = 6).
HUNG = 8


def _hanging(gate: threading.Event, started: threading.Semaphore) -> Callable[..., str]:
    def agent(prompt: str, ctx: AgentContext) -> str:
        started.release()
        gate.wait(30)  # a sync agent that hangs (bounded, so a failing test still ends)
        return "late\n"

    return agent


def _quick(prompt: str, ctx: AgentContext) -> str:
    return f"ok {prompt}\n"


def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.mark.timeout(60)
async def test_hung_sync_agents_do_not_starve_other_workers() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    workers = [
        WorkerConfig("hung", "sync", CallableAgent(_hanging(gate, started)), max_tasks=HUNG),
        WorkerConfig("quick", "sync", CallableAgent(_quick), max_tasks=4),
    ]
    with EmbeddedMesh(workers) as mesh:
        async with AsyncAgentFMClient(mesh.url, api_key=None, retries=0) as client:
            hung = [
                asyncio.ensure_future(
                    client.tasks.run(worker_id=mesh.peer_id("hung"), prompt=f"h{n}", timeout=40)
                )
                for n in range(HUNG)
            ]
            try:
                for _ in range(HUNG):
                    assert await asyncio.to_thread(started.acquire, True, 20)
                # Every hung agent holds a thread; the other worker must still answer.
                result = await client.tasks.run(
                    worker_id=mesh.peer_id("quick"), prompt="x", timeout=10
                )
                assert result.text == "ok x\n"
            finally:
                gate.set()
                for task in hung:
                    task.cancel()
                await asyncio.gather(*hung, return_exceptions=True)


@pytest.mark.timeout(60)
def test_callable_agent_timeout_and_the_slot_stays_busy_until_it_stops() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    agent = CallableAgent(_hanging(gate, started), timeout=0.3)
    with (
        EmbeddedMesh([WorkerConfig("slow", "sync", agent, max_tasks=1)]) as mesh,
        AgentFMClient(mesh.url, api_key=None, retries=0) as client,
    ):
        peer = mesh.peer_id("slow")
        try:
            result = client.tasks.run(worker_id=peer, prompt="p", timeout=20)
            assert "Sandbox exited: signal: killed" in result.text
            # The function is still running on its thread: the slot is not free.
            [profile] = client.workers.list()
            assert profile.current_tasks == 1
            second = client.tasks.stream(worker_id=peer, prompt="again", timeout=20)
            with pytest.raises(Exception, match="max capacity"), second:
                for _ in second:
                    pass
        finally:
            gate.set()
        assert _until(lambda: client.workers.list()[0].current_tasks == 0)
        assert started.acquire(timeout=1)
        gate.clear()
        # Freed for real: the next task runs (and times out the same way).
        assert "signal: killed" in client.tasks.run(worker_id=peer, prompt="p", timeout=20).text
        gate.set()
