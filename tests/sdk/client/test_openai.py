"""The OpenAI-compatible namespace on real workers, sync and async."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import pytest

from agentfm import AgentFMRoutingWarning, ModelNotFoundError
from agentfm.types.openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    ModelsList,
    TextCompletion,
    TextCompletionChunk,
)
from tests.helpers import call, collect

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh


async def test_models_list(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    models = await call(any_client.openai.models.list)
    assert isinstance(models, ModelsList)
    assert {m.id for m in models.data} == {w.peer_id for w in demo_mesh.workers}
    writer = next(m for m in models.data if m.agentfm_name == "writer")
    assert writer.agentfm_engine
    assert writer.agentfm_max_tasks


async def test_chat_non_stream(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    peer = demo_mesh.peer_id("echo")
    reply = await call(
        any_client.openai.chat.completions.create,
        model=peer,
        messages=[ChatMessage(role="system", content="S"), {"role": "user", "content": "Hi"}],
        temperature=0.2,
    )
    assert isinstance(reply, ChatCompletion)
    # The demo echo answers a chat with the last user turn of the gateway's flattened prompt.
    assert reply.choices[0].message.content == "Hi\n\n"


async def test_chat_stream(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    peer = demo_mesh.peer_id("echo")
    stream = await call(
        any_client.openai.chat.completions.create,
        model=peer,
        messages=[{"role": "user", "content": "one"}],
        stream=True,
        timeout=30,
    )
    chunks = await collect(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "one\n\n"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert stream.peer_id == peer
    assert stream.task_id
    assert stream.task_id.startswith("task_")


async def test_chat_by_name_warns_once(any_client: Any) -> None:
    any_client.openai._warner.reset()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            await call(
                any_client.openai.chat.completions.create,
                model="echo",
                messages=[{"role": "user", "content": "x"}],
            )
    assert [w.category for w in caught] == [AgentFMRoutingWarning]


@pytest.mark.filterwarnings("ignore::agentfm.AgentFMRoutingWarning")
async def test_chat_unknown_model(any_client: Any) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        await call(
            any_client.openai.chat.completions.create,
            model="nobody",
            messages=[{"role": "user", "content": "x"}],
        )
    assert info.value.status == 404
    assert info.value.code == "model_not_found"
    with pytest.raises(ModelNotFoundError):
        await call(
            any_client.openai.chat.completions.create,
            model="nobody",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
        )


async def test_completions(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    peer = demo_mesh.peer_id("echo")
    reply = await call(any_client.openai.completions.create, model=peer, prompt="verbatim")
    assert isinstance(reply, TextCompletion)
    assert reply.choices[0].text == "verbatim\n\n"
    stream = await call(
        any_client.openai.completions.create, model=peer, prompt="streamed", stream=True
    )
    chunks = await collect(stream)
    assert all(isinstance(c, TextCompletionChunk) for c in chunks)
    assert "".join(c.choices[0].text for c in chunks) == "streamed\n\n"
