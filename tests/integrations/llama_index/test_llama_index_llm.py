"""`AgentFM(LLM)` against real embedded meshes: every method, sync and async."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler

from agentfm import AgentFMError, IncompleteStreamError, ModelNotFoundError, flatten_messages
from agentfm_integrations.llama_index import (
    DEFAULT_CONTEXT_WINDOW,
    DEFAULT_NUM_OUTPUT,
    AgentFM,
)
from tests.helpers import call

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from llama_index.core.instrumentation.events import BaseEvent

    from agentfm.mesh import EmbeddedMesh

    from .conftest import Concurrency

HELLO = [
    ChatMessage(role=MessageRole.SYSTEM, content="You are terse."),
    ChatMessage(role=MessageRole.USER, content="hello mesh"),
]


class Recorder(BaseEventHandler):
    """Collects instrumentation event class names."""

    events: list[str] = []  # noqa: RUF012 - pydantic field default, copied per instance

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event.class_name())

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e == name)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    root = get_dispatcher()
    handler = Recorder(events=[])
    root.add_event_handler(handler)
    try:
        yield handler
    finally:
        root.event_handlers.remove(handler)


@pytest.fixture
def llm(demo_mesh: EmbeddedMesh, tmp_path: Path) -> Iterator[AgentFM]:
    model = AgentFM(model="echo", gateway_url=demo_mesh.url, artifacts_dir=str(tmp_path / "a"))
    yield model
    model.close()


@pytest.fixture
async def allm(demo_mesh: EmbeddedMesh, tmp_path: Path) -> AsyncIterator[AgentFM]:
    model = AgentFM(model="echo", gateway_url=demo_mesh.url, artifacts_dir=str(tmp_path / "a"))
    yield model
    await model.aclose()


def _spy_scatters(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size of every scatter ``client`` starts."""
    calls: list[int] = []
    original = client.tasks.scatter_iter

    def spy(prompts: Any, **kwargs: Any) -> Any:
        calls.append(len(prompts))
        return original(prompts, **kwargs)

    monkeypatch.setattr(client.tasks, "scatter_iter", spy)
    return calls


def _spy_collects(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the task id of every artifact collection ``client`` starts."""
    calls: list[str] = []
    original = client.tasks.collect_artifacts

    def spy(task_id: str, **kwargs: Any) -> Any:
        calls.append(task_id)
        return original(task_id, **kwargs)

    monkeypatch.setattr(client.tasks, "collect_artifacts", spy)
    return calls


def _all_exist(files: list[dict[str, Any]]) -> bool:
    return all(Path(ref["path"]).is_file() for ref in files)


def _client_of(llm: AgentFM, mode: str) -> Any:
    return llm.client if mode == "sync" else llm.async_client


def _echo_peers(mesh: EmbeddedMesh) -> set[str]:
    return {w.peer_id for w in mesh.workers if w.engine == "echo" or w.name == "echo"}


# -- configuration -------------------------------------------------------------------------


def test_metadata_class_name_and_defaults() -> None:
    llm = AgentFM(model="echo")
    meta = llm.metadata
    assert meta.is_chat_model is True
    assert meta.is_function_calling_model is False
    assert meta.model_name == "echo"
    assert meta.context_window == DEFAULT_CONTEXT_WINDOW
    assert meta.num_output == DEFAULT_NUM_OUTPUT
    assert AgentFM.class_name() == "AgentFM"

    custom = AgentFM(model="writer", context_window=32000, num_output=1024)
    assert custom.metadata.context_window == 32000
    assert custom.metadata.num_output == 1024


def test_to_dict_round_trip_without_the_key() -> None:
    llm = AgentFM(
        model="echo",
        gateway_url="http://127.0.0.1:9",
        api_key="sk-very-secret",
        timeout=12.5,
        max_retries=4,
        coalesce_window_ms=10,
    )
    data = llm.to_dict()
    assert data["class_name"] == "AgentFM"
    assert "sk-very-secret" not in repr(data)
    assert "sk-very-secret" not in repr(llm)
    assert "sk-very-secret" not in repr(llm.to_payload())
    assert "sk-very-secret" not in llm.to_json()

    back = AgentFM.from_dict(data)
    assert back.model == "echo"
    assert back.gateway_url == "http://127.0.0.1:9"
    assert back.timeout == 12.5
    assert back.max_retries == 4
    assert back.coalesce_window_ms == 10
    assert back.api_key is None


def test_api_key_falls_back_to_env_and_reaches_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTFM_API_KEY", "env-key")
    monkeypatch.setenv("AGENTFM_GATEWAY_URL", "http://127.0.0.1:9")
    llm = AgentFM(model="echo")
    assert llm.client.api_key == "env-key"
    assert llm.client.gateway_url.rstrip("/") == "http://127.0.0.1:9"
    explicit = AgentFM(model="echo", api_key="given")
    assert explicit.client.api_key == "given"
    llm.close()
    explicit.close()


def test_import_without_llama_index_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['llama_index'] = None\n"
        "sys.modules['llama_index.core'] = None\n"
        "import agentfm\n"
        "assert not any(m.startswith('llama_index') and sys.modules[m] for m in sys.modules)\n"
        "try:\n"
        "    import agentfm_integrations.llama_index\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert 'pip install "agentfm-integrations[llama-index]"' in out


def test_import_agentfm_does_not_import_llama_index() -> None:
    code = "import sys, agentfm; print(any(m.startswith('llama_index') for m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


# -- chat ----------------------------------------------------------------------------------


def test_chat(llm: AgentFM, demo_mesh: EmbeddedMesh, recorder: Recorder) -> None:
    response = llm.chat(HELLO)
    assert response.message.role == MessageRole.ASSISTANT
    assert "hello mesh" in (response.message.content or "")
    assert response.additional_kwargs["peer_id"] in _echo_peers(demo_mesh)
    assert response.additional_kwargs["task_id"]
    assert response.additional_kwargs["files"] == []
    assert response.raw["route"] == "task"
    assert response.raw["peers_tried"] == [response.additional_kwargs["peer_id"]]
    assert recorder.count("LLMChatStartEvent") == 1
    assert recorder.count("LLMChatEndEvent") == 1


async def test_achat(allm: AgentFM, demo_mesh: EmbeddedMesh, recorder: Recorder) -> None:
    response = await allm.achat(HELLO)
    assert "hello mesh" in (response.message.content or "")
    assert response.additional_kwargs["peer_id"] in _echo_peers(demo_mesh)
    assert response.additional_kwargs["task_id"]
    assert recorder.count("LLMChatEndEvent") == 1


def test_stream_chat(llm: AgentFM, recorder: Recorder) -> None:
    responses = list(llm.stream_chat(HELLO))
    assert len(responses) >= 2
    text = "".join(r.delta or "" for r in responses)
    assert text == responses[-1].message.content
    assert "hello mesh" in text
    assert responses[-1].additional_kwargs["task_id"]
    assert recorder.count("LLMChatInProgressEvent") == len(responses)
    assert recorder.count("LLMChatEndEvent") == 1


async def test_astream_chat(allm: AgentFM, recorder: Recorder) -> None:
    responses = [r async for r in await allm.astream_chat(HELLO)]
    text = "".join(r.delta or "" for r in responses)
    assert text == responses[-1].message.content
    assert "hello mesh" in text
    assert responses[-1].additional_kwargs["peer_id"]
    assert recorder.count("LLMChatEndEvent") == 1


def test_chat_pins_a_peer_id(llm: AgentFM, demo_mesh: EmbeddedMesh) -> None:
    for peer_id in sorted(_echo_peers(demo_mesh)):
        response = llm.chat(HELLO, model=peer_id)
        assert response.additional_kwargs["peer_id"] == peer_id


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_chat_returns_artifact_files(
    demo_mesh: EmbeddedMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    llm = AgentFM(model="writer", gateway_url=demo_mesh.url, artifacts_dir=str(tmp_path))
    collects = _spy_collects(_client_of(llm, mode), monkeypatch)
    chat = llm.chat if mode == "sync" else llm.achat
    response = await call(chat, [ChatMessage(role=MessageRole.USER, content="a note on tides")])
    files = response.additional_kwargs["files"]
    assert files, response
    assert _all_exist(files)
    assert all(len(ref["sha256"]) == 64 for ref in files)
    # Collected once, for the task the stream named, because its marker announced files.
    assert collects == [response.additional_kwargs["task_id"]]
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_stream_chat_last_response_carries_the_files(
    demo_mesh: EmbeddedMesh, tmp_path: Path, mode: str
) -> None:
    llm = AgentFM(model="writer", gateway_url=demo_mesh.url, artifacts_dir=str(tmp_path))
    messages = [ChatMessage(role=MessageRole.USER, content="a note on rivers")]
    if mode == "sync":
        responses = list(llm.stream_chat(messages))
    else:
        responses = [r async for r in await llm.astream_chat(messages)]
    assert all(r.additional_kwargs["files"] == [] for r in responses[:-1])
    assert responses[-1].additional_kwargs["files"]
    assert responses[-1].raw["route"] == "task"
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_chat_to_a_worker_without_files_never_asks_for_files(
    llm: AgentFM,
    demo_mesh: EmbeddedMesh,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    collects = _spy_collects(_client_of(llm, mode), monkeypatch)
    caplog.set_level(logging.DEBUG)
    chat = llm.chat if mode == "sync" else llm.achat
    response = await call(chat, HELLO)
    assert "hello mesh" in (response.message.content or "")
    assert response.additional_kwargs["files"] == []
    assert collects == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_fetch_artifacts_false_leaves_announced_files(
    demo_mesh: EmbeddedMesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    llm = AgentFM(
        model="writer",
        gateway_url=demo_mesh.url,
        artifacts_dir=str(tmp_path),
        fetch_artifacts=False,
    )
    collects = _spy_collects(_client_of(llm, mode), monkeypatch)
    chat = llm.chat if mode == "sync" else llm.achat
    response = await call(chat, [ChatMessage(role=MessageRole.USER, content="a note on tides")])
    assert response.additional_kwargs["task_id"]
    assert response.additional_kwargs["files"] == []
    assert collects == []
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_chat_prompt_is_the_gateway_flattening(li_mesh: EmbeddedMesh, mode: str) -> None:
    llm = AgentFM(model="parrot", gateway_url=li_mesh.url)
    wire = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first\nline two"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "again"},
    ]
    messages = [ChatMessage(role=MessageRole(m["role"]), content=m["content"]) for m in wire]
    chat = llm.chat if mode == "sync" else llm.achat
    response = await call(chat, messages)
    seen_native = json.loads((response.message.content or "").strip())
    # The same conversation through the gateway's own OpenAI-compatible chat route.
    completion = await call(
        _client_of(llm, mode).openai.chat.completions.create, model="parrot", messages=wire
    )
    seen_gateway = json.loads((completion.choices[0].message.content or "").strip())
    assert seen_native == seen_gateway == flatten_messages(wire)
    assert response.raw["route"] == "task"
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_chat_fails_over_from_a_broken_peer(li_mesh: EmbeddedMesh, mode: str) -> None:
    llm = AgentFM(model="flaky", gateway_url=li_mesh.url, max_retries=3)
    bad = li_mesh.peer_id("flaky-bad")
    chat = llm.chat if mode == "sync" else llm.achat
    # Peers are tried least-loaded first with random tie-breaks, so repeat until the broken
    # one has been picked first at least once (each round has a 1 in 3 chance).
    for i in range(100):
        content = f"round {i}"
        response = await call(chat, [ChatMessage(role=MessageRole.USER, content=content)])
        assert content in (response.message.content or "")
        assert response.additional_kwargs["peer_id"] != bad
        assert response.raw["peers_tried"][-1] == response.additional_kwargs["peer_id"]
        if bad in response.raw["peers_tried"]:
            assert response.raw["attempts"] == len(response.raw["peers_tried"]) > 1
            break
    else:
        pytest.fail("the broken peer was never tried")
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_chat_on_a_broken_peer_without_retries_raises(
    li_mesh: EmbeddedMesh, mode: str
) -> None:
    llm = AgentFM(model="broken", gateway_url=li_mesh.url, max_retries=0)
    chat = llm.chat if mode == "sync" else llm.achat
    with pytest.raises(IncompleteStreamError):
        await call(chat, HELLO)
    llm.close()
    await llm.aclose()


# -- completion ------------------------------------------------------------------------------


def test_complete(llm: AgentFM, demo_mesh: EmbeddedMesh, recorder: Recorder) -> None:
    response = llm.complete("ping the echo")
    assert "ping the echo" in response.text
    assert response.additional_kwargs["peer_id"] in _echo_peers(demo_mesh)
    assert response.additional_kwargs["task_id"]
    assert recorder.count("LLMCompletionStartEvent") == 1
    assert recorder.count("LLMCompletionEndEvent") == 1


async def test_acomplete(allm: AgentFM, demo_mesh: EmbeddedMesh, recorder: Recorder) -> None:
    response = await allm.acomplete("ping the echo")
    assert "ping the echo" in response.text
    assert response.additional_kwargs["peer_id"] in _echo_peers(demo_mesh)
    assert recorder.count("LLMCompletionEndEvent") == 1


def test_stream_complete(llm: AgentFM, recorder: Recorder) -> None:
    responses = list(llm.stream_complete("stream me"))
    assert "".join(r.delta or "" for r in responses) == responses[-1].text
    assert "stream me" in responses[-1].text
    assert responses[-1].additional_kwargs["task_id"]
    assert recorder.count("LLMCompletionInProgressEvent") == len(responses)


async def test_astream_complete(allm: AgentFM, recorder: Recorder) -> None:
    responses = [r async for r in await allm.astream_complete("stream me")]
    assert "".join(r.delta or "" for r in responses) == responses[-1].text
    assert "stream me" in responses[-1].text
    assert recorder.count("LLMCompletionEndEvent") == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_complete_pins_peer_and_returns_files(
    demo_mesh: EmbeddedMesh, tmp_path: Path, mode: str
) -> None:
    writer = demo_mesh.peer_id("writer")
    llm = AgentFM(model=writer, gateway_url=demo_mesh.url, artifacts_dir=str(tmp_path))
    if mode == "sync":
        response = llm.complete("a note on tides")
    else:
        response = await llm.acomplete("a note on tides")
    assert response.additional_kwargs["peer_id"] == writer
    files = response.additional_kwargs["files"]
    assert files
    assert files[0]["size"] > 0
    assert len(files[0]["sha256"]) == 64
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_unknown_model_raises_typed_error(demo_mesh: EmbeddedMesh, mode: str) -> None:
    llm = AgentFM(model="no-such-agent", gateway_url=demo_mesh.url)
    complete = llm.complete if mode == "sync" else llm.acomplete
    chat = llm.chat if mode == "sync" else llm.achat
    with pytest.raises(ModelNotFoundError):
        await call(complete, "x")
    with pytest.raises(ModelNotFoundError):
        await call(chat, HELLO)
    llm.close()
    await llm.aclose()


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrent_acomplete_calls_overlap(
    li_mesh: EmbeddedMesh, concurrency: Concurrency
) -> None:
    llm = AgentFM(model="gate", gateway_url=li_mesh.url)

    concurrency.reset(target=1)
    for i in range(8):
        await llm.acomplete(f"serial {i}")
    serial_peak = concurrency.peak

    concurrency.reset(target=8)
    results = await asyncio.gather(*(llm.acomplete(f"together {i}") for i in range(8)))
    concurrent_peak = concurrency.peak

    assert [r.text.strip() for r in results] == [f"gate:together {i}" for i in range(8)]
    assert serial_peak == 1
    # The ratio concurrent/serial peak in-flight tasks: 8 means all calls overlapped.
    assert concurrent_peak / serial_peak == 8
    await llm.aclose()


# -- batch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_batch_complete_in_order_with_per_item_events(
    demo_mesh: EmbeddedMesh, recorder: Recorder, mode: str
) -> None:
    llm = AgentFM(model="echo", gateway_url=demo_mesh.url)
    prompts = [f"item-{i}" for i in range(6)]
    if mode == "sync":
        responses = llm.batch_complete(prompts, max_concurrency=3)
    else:
        responses = await llm.abatch_complete(prompts, max_concurrency=3)
    assert [p in r.text for p, r in zip(prompts, responses, strict=True)] == [True] * 6
    assert all(r.raw["route"] == "scatter" for r in responses)
    assert all(r.additional_kwargs["peer_id"] in _echo_peers(demo_mesh) for r in responses)
    assert recorder.count("LLMCompletionStartEvent") == 6
    assert recorder.count("LLMCompletionEndEvent") == 6
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_batch_chat_flattens_like_the_gateway(
    demo_mesh: EmbeddedMesh, recorder: Recorder, mode: str
) -> None:
    llm = AgentFM(model="echo", gateway_url=demo_mesh.url)
    batch = [[ChatMessage(role=MessageRole.USER, content=f"question {i}")] for i in range(4)]
    if mode == "sync":
        responses: list[ChatResponse] = llm.batch_chat(batch)
    else:
        responses = await llm.abatch_chat(batch)
    for messages, response in zip(batch, responses, strict=True):
        # The demo echo finds the last user turn only in a prompt shaped exactly like the
        # gateway's flattening; any other shape would come back whole.
        assert response.message.content == f"{messages[0].content}\n"
    assert recorder.count("LLMChatStartEvent") == 4
    assert recorder.count("LLMChatEndEvent") == 4
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_batch_of_50_survives_a_failing_peer(
    li_mesh: EmbeddedMesh, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    llm = AgentFM(model="flaky", gateway_url=li_mesh.url, max_retries=3)
    bad = li_mesh.peer_id("flaky-bad")
    prompts = [f"job {i}" for i in range(50)]
    if mode == "sync":
        scatters = _spy_scatters(llm.client, monkeypatch)
        responses = llm.batch_complete(prompts, max_concurrency=8)
    else:
        scatters = _spy_scatters(llm.async_client, monkeypatch)
        responses = await llm.abatch_complete(prompts, max_concurrency=8)
    # Exactly one SDK scatter: it moves items whose stream broke to untried peers itself.
    assert scatters == [50]
    assert len(responses) == 50
    assert [r.text.strip() for r in responses] == prompts
    assert all(r.additional_kwargs["peer_id"] != bad for r in responses)
    # The failing peer was really tried, and its items failed over.
    assert any(bad in r.raw["peers_tried"] and r.raw["attempts"] > 1 for r in responses)
    llm.close()
    await llm.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_batch_return_exceptions(li_mesh: EmbeddedMesh, mode: str) -> None:
    llm = AgentFM(model="broken", gateway_url=li_mesh.url, max_retries=0)
    batch = llm.batch_complete if mode == "sync" else llm.abatch_complete
    results = await call(batch, ["a", "b"], return_exceptions=True)
    assert len(results) == 2
    assert all(isinstance(r, AgentFMError) for r in results)
    with pytest.raises(type(results[0])):
        await call(batch, ["a", "b"])
    llm.close()
    await llm.aclose()


async def test_coalescing_serves_gathered_calls_with_one_scatter(
    demo_mesh: EmbeddedMesh, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    llm = AgentFM(model="echo", gateway_url=demo_mesh.url, coalesce_window_ms=50)
    calls = _spy_scatters(llm.async_client, monkeypatch)
    chat = [ChatMessage(role=MessageRole.USER, content="coalesced chat")]
    results = await asyncio.gather(*(llm.acomplete(f"c{i}") for i in range(7)), llm.achat(chat))
    assert calls == [8]
    assert [r.text.strip() for r in results[:7]] == [f"c{i}" for i in range(7)]
    assert all(r.raw["route"] == "scatter" for r in results)
    assert "coalesced chat" in (results[7].message.content or "")  # type: ignore[union-attr]
    assert recorder.count("LLMCompletionEndEvent") == 7
    assert recorder.count("LLMChatEndEvent") == 1
    await llm.aclose()
