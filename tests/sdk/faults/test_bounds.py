"""Default bounds: a silent stream ends with ``idle_timeout``, a huge one with
``max_output_bytes`` (issue #15 items 5 and 9), on `tasks.run`, `tasks.stream` and scatter.

A real mesh whose agent writes a line and then goes silent (or floods), so the client's
own bound is what ends the call. The bounds are set small per call or per client.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from agentfm import (
    AgentFMClient,
    AgentFMTimeoutError,
    AsyncAgentFMClient,
    OutputTooLargeError,
)
from agentfm._constants import DEFAULT_IDLE_TIMEOUT
from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig
from tests.helpers import call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


async def _silent(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    yield "first line\n"
    await asyncio.sleep(30)  # then nothing (the mesh cancels it when the client leaves)
    yield "never\n"


async def _trickle(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    for _ in range(6):
        await asyncio.sleep(0.1)
        yield ".\n"


def _flood(prompt: str, ctx: AgentContext) -> Iterator[str]:
    for _ in range(64):
        yield "x" * 16384


@pytest.fixture(scope="module")
def mesh() -> Iterator[EmbeddedMesh]:
    workers = [
        WorkerConfig("silent", "s", CallableAgent(_silent), max_tasks=8),
        WorkerConfig("trickle", "t", CallableAgent(_trickle), max_tasks=8),
        WorkerConfig("flood", "f", CallableAgent(_flood), max_tasks=8),
    ]
    with EmbeddedMesh(workers) as m:
        yield m


def test_the_default_idle_bound_is_at_least_the_gateway_s() -> None:
    assert DEFAULT_IDLE_TIMEOUT is not None
    assert DEFAULT_IDLE_TIMEOUT >= 600  # Go ends a task after 10 minutes without a byte
    assert AgentFMClient("http://127.0.0.1:1").idle_timeout == DEFAULT_IDLE_TIMEOUT
    assert AgentFMClient("http://127.0.0.1:1", idle_timeout=None).idle_timeout is None


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_silent_stream_ends_with_idle_timeout(mesh: EmbeddedMesh, flavour: str) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    peer = mesh.peer_id("silent")
    client: Any = cls(mesh.url, api_key=None, retries=0, idle_timeout=0.4)
    try:
        with pytest.raises(AgentFMTimeoutError, match="idle_timeout") as caught:
            await call(client.tasks.run, worker_id=peer, prompt="x")
        assert caught.value.task_started
        # Per call, as timeout= is.
        with pytest.raises(AgentFMTimeoutError, match="idle_timeout"):
            await call(
                client.with_options(idle_timeout=None).tasks.run,
                worker_id=peer,
                prompt="x",
                idle_timeout=0.3,
            )
        results = await call(client.tasks.scatter, ["a", "b"], peer_ids=[peer], max_retries=0)
        assert [r.ok for r in results] == [False, False]
        assert all("idle_timeout" in str(r.error) for r in results)
        # A stream that keeps sending is not idle, however long it takes in total.
        trickle = mesh.peer_id("trickle")
        result = await call(client.tasks.run, worker_id=trickle, prompt="x", idle_timeout=0.35)
        assert result.text == ".\n" * 6
    finally:
        await call(client.close)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_max_output_bytes_fails_the_task(mesh: EmbeddedMesh, flavour: str) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    peer = mesh.peer_id("flood")
    client: Any = cls(mesh.url, api_key=None, retries=0, max_output_bytes=100_000)
    try:
        with pytest.raises(OutputTooLargeError) as caught:
            await call(client.tasks.run, worker_id=peer, prompt="x")
        assert caught.value.code == "output_too_large"
        results = await call(client.tasks.scatter, ["a"], peer_ids=[peer], max_retries=0)
        assert not results[0].ok
        assert "max_output_bytes" in str(results[0].error)
        roomy = client.with_options(max_output_bytes=2_000_000)
        text = (await call(roomy.tasks.run, worker_id=peer, prompt="x")).text
        assert text.count("x") == 64 * 16384
    finally:
        await call(client.close)


@pytest.mark.timeout(60)
def test_integrations_take_idle_timeout_and_default_to_the_sdk_bound(mesh: EmbeddedMesh) -> None:
    from langchain_core.exceptions import ModelTimeoutError

    from agentfm_integrations.langchain import ChatAgentFM
    from agentfm_integrations.llama_index import AgentFM

    assert ChatAgentFM(model="silent").idle_timeout == DEFAULT_IDLE_TIMEOUT
    assert AgentFM(model="silent").idle_timeout == DEFAULT_IDLE_TIMEOUT

    chat = ChatAgentFM(model="silent", gateway_url=mesh.url, idle_timeout=0.4, max_retries=0)
    try:
        with pytest.raises(ModelTimeoutError) as caught:
            chat.invoke("hello")
        assert isinstance(caught.value.__cause__, AgentFMTimeoutError)
        assert "idle_timeout" in str(caught.value.__cause__)
    finally:
        chat.close()

    llm = AgentFM(model="silent", gateway_url=mesh.url, idle_timeout=0.4, max_retries=0)
    with pytest.raises(AgentFMTimeoutError, match="idle_timeout"):
        llm.complete("hello")
    llm.client.close()
