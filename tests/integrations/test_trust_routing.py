"""Trust-aware routing through both integrations, counted on the mesh.

One of two workers serving the same engine is rated below the gateway's floor; a LangChain
batch and LlamaIndex calls with ``min_honesty`` must never dispatch to it, and rating the
worker that served an answer must move its reputation.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from agentfm import AgentFMClient
from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

ENGINE = "trust-engine"
SERVED: Counter[str] = Counter()
_LOCK = threading.Lock()


def _agent(name: str) -> CallableAgent:
    def run(prompt: str, ctx: AgentContext) -> str:
        with _LOCK:
            SERVED[name] += 1
        return f"{name} says {prompt}\n"

    return CallableAgent(run)


@pytest.fixture
def rated_mesh(tmp_path: Path) -> Iterator[tuple[EmbeddedMesh, str, str, float]]:
    """(mesh, good peer, bad peer rated -1.0, the gateway's floor)."""
    SERVED.clear()
    workers = [
        WorkerConfig("good", ENGINE, _agent("good"), max_tasks=8, seed="trust:good"),
        WorkerConfig("bad", ENGINE, _agent("bad"), max_tasks=8, seed="trust:bad"),
    ]
    with EmbeddedMesh(workers, api_keys=[], state_dir=tmp_path) as mesh:
        good, bad = mesh.peer_id("good"), mesh.peer_id("bad")
        with AgentFMClient(mesh.url, api_key=None) as client:
            client.peers.comment(bad, "wrong answers", rating=-1.0)
            assert client.peers.get(bad).honesty_score < -0.5
        yield mesh, good, bad, -0.5


def _refused(mesh: EmbeddedMesh, peer: str) -> int:
    assert mesh._state is not None
    return mesh._state.reputation.refusals.get(peer, 0)


def test_langchain_batch_with_min_honesty_never_dispatches_below_it(
    rated_mesh: tuple[EmbeddedMesh, str, str, float],
) -> None:
    from agentfm_integrations.langchain import ChatAgentFM

    mesh, good, bad, floor = rated_mesh
    chat = ChatAgentFM(model=ENGINE, gateway_url=mesh.url, api_key=None, min_honesty=floor)
    answers = chat.batch([f"question {i}" for i in range(10)])
    assert all(f"question {i}\n" in str(a.content) for i, a in enumerate(answers))
    assert {a.response_metadata["peer_id"] for a in answers} == {good}
    one = chat.invoke("single")
    assert one.response_metadata["peer_id"] == good
    assert SERVED["bad"] == 0
    assert _refused(mesh, bad) == 0  # the gateway was never even asked
    # Rating the worker that served an answer moves its reputation.
    chat.rate_worker(one, -1.0)
    with AgentFMClient(mesh.url, api_key=None) as client:
        assert client.peers.reputation(good).honesty < 0


async def test_langchain_abatch_with_min_honesty(
    rated_mesh: tuple[EmbeddedMesh, str, str, float],
) -> None:
    from agentfm_integrations.langchain import ChatAgentFM

    mesh, good, bad, floor = rated_mesh
    chat = ChatAgentFM(model=ENGINE, gateway_url=mesh.url, api_key=None, min_honesty=floor)
    answers = await chat.abatch([f"q{i}" for i in range(6)])
    assert {a.response_metadata["peer_id"] for a in answers} == {good}
    await chat.arate_worker(answers[0], 0.5)
    assert SERVED["bad"] == 0
    assert _refused(mesh, bad) == 0


def test_llama_index_with_min_honesty_and_rating(
    rated_mesh: tuple[EmbeddedMesh, str, str, float],
) -> None:
    from agentfm_integrations.llama_index import AgentFM

    mesh, good, bad, floor = rated_mesh
    llm = AgentFM(model=ENGINE, gateway_url=mesh.url, api_key=None, min_honesty=floor)
    responses = [llm.complete(f"prompt {i}") for i in range(4)]
    assert {r.additional_kwargs["peer_id"] for r in responses} == {good}
    batch = llm.batch_complete([f"batch {i}" for i in range(8)])
    assert {r.additional_kwargs["peer_id"] for r in batch} == {good}
    llm.rate_worker(responses[0], 0.75)
    with AgentFMClient(mesh.url, api_key=None) as client:
        assert client.peers.get(good).entries_count == 2
    assert SERVED["bad"] == 0
    assert _refused(mesh, bad) == 0
