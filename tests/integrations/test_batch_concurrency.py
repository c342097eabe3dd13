"""Every integration batch without a ``max_concurrency`` fills the mesh as the SDK decides.

The rule lives in the SDK: ``client.tasks.scatter(max_concurrency=None)`` sizes the batch by
the peers' advertised task slots (`agentfm._defaults.scatter_concurrency`), and the
integrations pass None rather than a number of their own. A fixed 8 over this 16-slot mesh
would leave half of it idle.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from tests.integrations.llama_index.conftest import Concurrency

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agentfm.mesh import AgentContext, EmbeddedMesh

ENGINE = "wide-gate"
WORKERS = 2
SLOTS = 8
CAPACITY = WORKERS * SLOTS
# How long a task waits for all its siblings; a batch capped below CAPACITY never gets there,
# so this bounds how long the failing case takes.
PATIENCE_S = 5.0


@pytest.fixture(scope="module")
def in_flight() -> Concurrency:
    """Tasks running inside the agents right now, and the most seen at once."""
    return Concurrency()


@pytest.fixture(scope="module")
def wide_mesh(in_flight: Concurrency) -> Iterator[EmbeddedMesh]:
    """Two workers of 8 slots each; a task returns once all 16 slots are busy (or later)."""
    from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig

    async def gate(prompt: str, ctx: AgentContext) -> str:
        in_flight.enter()
        try:
            deadline = time.monotonic() + PATIENCE_S
            # Polled: the mesh may run agents on a loop of its own.
            while in_flight.peak < in_flight.target and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            return f"gate:{prompt}\n"
        finally:
            in_flight.leave()

    workers = [
        WorkerConfig(f"wide{i}", ENGINE, CallableAgent(gate), max_tasks=SLOTS, seed=f"wide-{i}")
        for i in range(WORKERS)
    ]
    with EmbeddedMesh(workers=workers) as mesh:
        yield mesh


PROMPTS = [f"item-{i}" for i in range(CAPACITY)]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_llama_index_batch_defaults_to_the_mesh_capacity(
    wide_mesh: EmbeddedMesh, in_flight: Concurrency, mode: str
) -> None:
    from agentfm_integrations.llama_index import AgentFM

    in_flight.reset(CAPACITY)
    llm = AgentFM(model=ENGINE, gateway_url=wide_mesh.url)
    if mode == "sync":
        responses = llm.batch_complete(PROMPTS)
    else:
        responses = await llm.abatch_complete(PROMPTS)
    assert [r.text for r in responses] == [f"gate:{p}\n" for p in PROMPTS]
    assert in_flight.peak == CAPACITY
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_langchain_batch_defaults_to_the_mesh_capacity(
    wide_mesh: EmbeddedMesh, in_flight: Concurrency, mode: str
) -> None:
    from agentfm_integrations.langchain import ChatAgentFM

    in_flight.reset(CAPACITY)
    llm = ChatAgentFM(model=ENGINE, gateway_url=wide_mesh.url)
    if mode == "sync":
        answers = llm.batch(list(PROMPTS))
    else:
        answers = await llm.abatch(list(PROMPTS))
    # The chat route flattens the conversation, so the agent sees ``user: item-N`` turns.
    assert [p in str(a.content) for p, a in zip(PROMPTS, answers, strict=True)] == [True] * len(
        PROMPTS
    )
    assert in_flight.peak == CAPACITY
    llm.close()
    await llm.aclose()


def test_sdk_scatter_without_a_cap_fills_the_mesh(
    wide_mesh: EmbeddedMesh, in_flight: Concurrency
) -> None:
    from agentfm import AgentFMClient

    in_flight.reset(CAPACITY)
    with AgentFMClient(wide_mesh.url, api_key=None, routing_warning=False) as client:
        peers = [w.peer_id for w in client.workers.match(ENGINE)]
        results = client.tasks.scatter(PROMPTS, peer_ids=peers, max_concurrency=None)
    assert all(r.ok for r in results)
    assert in_flight.peak == CAPACITY
