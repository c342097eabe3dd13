"""ChatAgentFM against real embedded meshes: routing, metadata, files, errors, scatter batch."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core import exceptions as lc_exc
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField

import agentfm
from agentfm_integrations.langchain import ChatAgentFM
from agentfm_integrations.langchain._batch import INDEX_KEY
from tests.integrations.langchain.conftest import ENGINE, ScatterSpy

if TYPE_CHECKING:
    from uuid import UUID

    from agentfm.mesh import EmbeddedMesh


class RunRecorder(BaseCallbackHandler):
    """Record every chat-model run start, end and error."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.ends: list[UUID] = []
        self.errors: list[UUID] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self.starts.append({"run_id": run_id, "serialized": serialized, **kwargs})

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.ends.append(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors.append(run_id)


def _model(mesh: EmbeddedMesh, artifacts_dir: str, **kw: Any) -> ChatAgentFM:
    params: dict[str, Any] = {"model": "echo", "gateway_url": mesh.url, "api_key": None}
    return ChatAgentFM(**{**params, "artifacts_dir": artifacts_dir, **kw})


def _check_metadata(msg: AIMessage | AIMessageChunk, model: str) -> None:
    md = msg.response_metadata
    assert md["model_name"] == model
    assert md["model_provider"] == "agentfm"
    assert md["finish_reason"] == "stop"
    assert md["peer_id"].startswith("12D3KooW")
    assert md["task_id"]
    assert md["agentfm"]["usage_estimated"] is True
    usage = msg.usage_metadata
    assert usage is not None
    assert usage["input_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


# ------------------------------------------------------------------------ single calls


def test_invoke_sync_and_metadata(demo_mesh: EmbeddedMesh, artifacts_dir: str) -> None:
    msg = _model(demo_mesh, artifacts_dir).invoke("hello mesh")
    assert "hello mesh" in msg.text
    _check_metadata(msg, "echo")
    assert "files" not in msg.response_metadata["agentfm"]


async def test_invoke_async_and_metadata(demo_mesh: EmbeddedMesh, artifacts_dir: str) -> None:
    msg = await _model(demo_mesh, artifacts_dir).ainvoke("hello async")
    assert "hello async" in msg.text
    _check_metadata(msg, "echo")


def test_stream_chunks_usage_once_and_last_position(
    demo_mesh: EmbeddedMesh, artifacts_dir: str
) -> None:
    chunks = list(_model(demo_mesh, artifacts_dir).stream("stream me"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert chunks[-1].chunk_position == "last"
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert "stream me" in full.text
    _check_metadata(full, "echo")


async def test_astream_chunks(demo_mesh: EmbeddedMesh, artifacts_dir: str) -> None:
    chunks = [c async for c in _model(demo_mesh, artifacts_dir).astream("astream me")]
    assert chunks[-1].chunk_position == "last"
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert "astream me" in full.text
    _check_metadata(full, "echo")


@pytest.mark.parametrize("how", ["invoke", "bind", "configurable"])
def test_peer_pinning_per_call(demo_mesh: EmbeddedMesh, artifacts_dir: str, how: str) -> None:
    peers = [w.peer_id for w in demo_mesh.workers if w.engine == "echo"]
    assert len(peers) >= 2
    target = peers[-1]
    llm = _model(demo_mesh, artifacts_dir)
    for _ in range(3):
        if how == "invoke":
            msg = llm.invoke("pin", model=target)
        elif how == "bind":
            msg = llm.bind(model=target).invoke("pin")
        else:
            conf = llm.configurable_fields(model_name=ConfigurableField(id="model"))
            msg = conf.invoke("pin", config={"configurable": {"model": target}})
        assert msg.response_metadata["peer_id"] == target
        assert msg.response_metadata["model_name"] == target


def test_stop_is_applied_client_side(demo_mesh: EmbeddedMesh, artifacts_dir: str) -> None:
    llm = _model(demo_mesh, artifacts_dir)
    assert "CUT" in llm.invoke("keep this CUT drop that").text
    msg = llm.invoke("keep this CUT drop that", stop=["CUT"])
    assert "drop that" not in msg.text
    assert "keep this" in msg.text
    streamed = "".join(c.text for c in llm.stream("keep this CUT drop that", stop=["CUT"]))
    assert "drop that" not in streamed
    assert "keep this" in streamed
    assert "drop" not in _model(demo_mesh, artifacts_dir, stop=["CUT"]).invoke("a CUT drop").text


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_files_are_listed_by_reference(
    demo_mesh: EmbeddedMesh, artifacts_dir: str, mode: str
) -> None:
    llm = _model(demo_mesh, artifacts_dir, model="writer")
    msg = llm.invoke("a note") if mode == "sync" else await llm.ainvoke("a note")
    _check_files(msg.response_metadata["agentfm"]["files"], artifacts_dir)


def _check_files(files: list[dict[str, Any]], root: str) -> None:
    assert files
    for ref in files:
        path = Path(ref["path"])
        assert path.is_file()
        assert path.is_relative_to(Path(root).resolve())
        data = path.read_bytes()
        assert ref["size"] == len(data)
        assert ref["sha256"] == hashlib.sha256(data).hexdigest()
        assert ref["mime_type"]


async def _call(llm: ChatAgentFM, mode: str) -> AIMessage:
    return llm.invoke("hi") if mode == "sync" else await llm.ainvoke("hi")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_streamed_files_are_on_the_last_chunk(
    demo_mesh: EmbeddedMesh, artifacts_dir: str, mode: str
) -> None:
    llm = _model(demo_mesh, artifacts_dir, model="writer")
    if mode == "sync":
        chunks = list(llm.stream("a note"))
    else:
        chunks = [c async for c in llm.astream("a note")]
    assert chunks[-1].chunk_position == "last"
    _check_files(chunks[-1].response_metadata["agentfm"]["files"], artifacts_dir)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_unknown_model_maps_to_core_not_found(
    demo_mesh: EmbeddedMesh, artifacts_dir: str, mode: str
) -> None:
    llm = _model(demo_mesh, artifacts_dir, model="no-such-agent")
    with pytest.raises(lc_exc.ModelNotFoundError) as info:
        await _call(llm, mode)
    assert isinstance(info.value.__cause__, agentfm.ModelNotFoundError)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_unreachable_gateway_maps_to_connection_error(artifacts_dir: str, mode: str) -> None:
    llm = ChatAgentFM(model="echo", gateway_url="http://127.0.0.1:9", api_key=None, max_retries=0)
    with pytest.raises(lc_exc.ModelConnectionError) as info:
        await _call(llm, mode)
    assert isinstance(info.value.__cause__, agentfm.GatewayConnectionError)


def test_api_key_never_leaks(demo_mesh: EmbeddedMesh, artifacts_dir: str) -> None:
    secret = "sk-agentfm-very-secret"
    llm = _model(demo_mesh, artifacts_dir, api_key=secret)
    assert secret not in repr(llm)
    assert secret not in str(llm)
    assert secret not in llm.model_dump_json()
    assert secret not in str(llm._get_invocation_params())
    assert secret not in str(llm._get_ls_params())
    recorder = RunRecorder()
    llm.invoke("hi", config={"callbacks": [recorder]})
    assert secret not in str(recorder.starts)


@pytest.mark.parametrize("key", ["gateway_url", "base_url"])
def test_settings_aliases_and_token_estimate(key: str) -> None:
    llm = ChatAgentFM(model="echo", api_key=None, **{key: "http://gw.example:8080"})
    assert llm.gateway_url == "http://gw.example:8080"
    assert llm.get_num_tokens("x" * 40) == 10
    assert llm.get_num_tokens_from_messages([AIMessage("y" * 40)]) > 0


# ------------------------------------------------------------------------ scatter batch


def test_batch_of_50_is_one_scatter_with_one_run_per_input(
    demo_mesh: EmbeddedMesh, client: agentfm.AgentFMClient
) -> None:
    spy = ScatterSpy(client)
    llm = ChatAgentFM(model="echo", client=client)
    recorder = RunRecorder()
    inputs = [f"item {i}" for i in range(50)]
    out = llm.batch(inputs, config={"callbacks": [recorder], "tags": ["mine"]})
    assert spy.calls == [50]
    assert [f"item {i}" in m.text for i, m in enumerate(out)] == [True] * 50
    assert len({s["run_id"] for s in recorder.starts}) == 50
    assert sorted(s["metadata"][INDEX_KEY] for s in recorder.starts) == list(range(50))
    assert all("mine" in s["tags"] for s in recorder.starts)
    assert len(recorder.ends) == 50
    peers = {m.response_metadata["peer_id"] for m in out}
    assert len(peers) >= 2, "a scatter spreads over the echo peers"
    _check_metadata(out[0], "echo")


async def test_abatch_under_running_loop_is_one_scatter(
    demo_mesh: EmbeddedMesh, aclient: agentfm.AsyncAgentFMClient
) -> None:
    spy = ScatterSpy(aclient)
    llm = ChatAgentFM(model="echo", async_client=aclient)
    recorder = RunRecorder()
    out = await llm.abatch([f"a{i}" for i in range(12)], config={"callbacks": [recorder]})
    assert spy.calls == [12]
    assert [f"a{i}" in m.text for i, m in enumerate(out)] == [True] * 12
    assert len({s["run_id"] for s in recorder.starts}) == 12


def test_batch_as_completed_is_one_scatter(client: agentfm.AgentFMClient) -> None:
    spy = ScatterSpy(client)
    llm = ChatAgentFM(model="echo", client=client)
    got = dict(llm.batch_as_completed([f"c{i}" for i in range(8)]))
    assert spy.calls == [8]
    assert sorted(got) == list(range(8))
    assert all(f"c{i}" in str(got[i].text) for i in range(8))  # type: ignore[union-attr]


async def test_abatch_as_completed_is_one_scatter(aclient: agentfm.AsyncAgentFMClient) -> None:
    spy = ScatterSpy(aclient)
    llm = ChatAgentFM(model="echo", async_client=aclient)
    got = {i: m async for i, m in llm.abatch_as_completed([f"d{i}" for i in range(8)])}
    assert spy.calls == [8]
    assert sorted(got) == list(range(8))


def test_chain_batch_reaches_the_scatter(client: agentfm.AgentFMClient) -> None:
    spy = ScatterSpy(client)
    llm = ChatAgentFM(model="echo", client=client)
    chain = ChatPromptTemplate.from_messages([("human", "topic {t}")]) | llm | StrOutputParser()
    out = chain.batch([{"t": f"t{i}"} for i in range(6)])
    assert spy.calls == [6]
    assert [f"topic t{i}" in s for i, s in enumerate(out)] == [True] * 6


def test_bound_model_keeps_the_scatter(
    demo_mesh: EmbeddedMesh, client: agentfm.AgentFMClient
) -> None:
    target = demo_mesh.peer_id("echo")
    spy = ScatterSpy(client)
    out = ChatAgentFM(model="writer", client=client).bind(model=target).batch(["x", "y", "z"])
    assert spy.calls == [3]
    assert {m.response_metadata["peer_id"] for m in out} == {target}


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_streaming_model_batch_runs_each_item_once(
    fclient: agentfm.AgentFMClient,
    afclient: agentfm.AsyncAgentFMClient,
    task_log: list[str],
    mode: str,
) -> None:
    # streaming=True makes core prefer _stream for every run; a scatter item must still
    # take its scattered answer instead of sending a second task.
    inputs = [f"once-{mode}-{i}" for i in range(3)]
    before = len(task_log)
    if mode == "sync":
        out = ChatAgentFM(model="count", client=fclient, streaming=True).batch(inputs)
    else:
        llm = ChatAgentFM(model="count", async_client=afclient, streaming=True)
        out = await llm.abatch(inputs)
    assert [i in m.text for i, m in zip(inputs, out, strict=True)] == [True] * 3
    assert sorted(p.split("user: ")[1].split("\n")[0] for p in task_log[before:]) == inputs


def test_use_scatter_false_keeps_per_input_calls(client: agentfm.AgentFMClient) -> None:
    spy = ScatterSpy(client)
    out = ChatAgentFM(model="echo", client=client, use_scatter=False).batch(["p", "q"])
    assert spy.calls == []
    assert "p" in out[0].text
    assert "q" in out[1].text


def test_batch_survives_a_peer_failing_every_task(
    failing_mesh: EmbeddedMesh, fclient: agentfm.AgentFMClient
) -> None:
    broken = failing_mesh.peer_id("broken")
    assert broken in [w.peer_id for w in fclient.workers.match(ENGINE)]
    spy = ScatterSpy(fclient)
    llm = ChatAgentFM(model=ENGINE, client=fclient)
    out = llm.batch([f"n{i}" for i in range(50)])
    # Exactly one scatter: the SDK's scatter moves items whose stream broke to other peers.
    assert spy.calls == [50]
    assert [f"n{i}" in m.text for i, m in enumerate(out)] == [True] * 50
    assert broken not in {m.response_metadata["peer_id"] for m in out}
    assert any(broken in m.response_metadata["agentfm"]["peers_tried"] for m in out)


async def test_abatch_survives_a_peer_failing_every_task(
    failing_mesh: EmbeddedMesh, afclient: agentfm.AsyncAgentFMClient
) -> None:
    broken = failing_mesh.peer_id("broken")
    spy = ScatterSpy(afclient)
    llm = ChatAgentFM(model=ENGINE, async_client=afclient)
    out = await llm.abatch([f"m{i}" for i in range(50)])
    assert spy.calls == [50]
    assert [f"m{i}" in m.text for i, m in enumerate(out)] == [True] * 50
    assert broken not in {m.response_metadata["peer_id"] for m in out}


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_return_exceptions_gives_per_item_errors(
    fclient: agentfm.AgentFMClient, afclient: agentfm.AsyncAgentFMClient, mode: str
) -> None:
    inputs = ["ok 0", "FAIL 1", "ok 2", "FAIL 3", "ok 4"]
    recorder = RunRecorder()
    config: Any = {"callbacks": [recorder]}
    if mode == "sync":
        llm = ChatAgentFM(model=ENGINE, client=fclient)
        out: list[Any] = llm.batch(inputs, config=config, return_exceptions=True)
    else:
        llm = ChatAgentFM(model=ENGINE, async_client=afclient)
        out = await llm.abatch(inputs, config=config, return_exceptions=True)
    for text, item in zip(inputs, out, strict=True):
        if text.startswith("FAIL"):
            assert isinstance(item, lc_exc.ModelAPIError)
            assert isinstance(item.__cause__, agentfm.AgentFMError)
        else:
            assert isinstance(item, AIMessage)
            assert text in item.text
    assert len(recorder.errors) == 2
    assert len(recorder.ends) == 3


def test_batch_without_return_exceptions_raises(fclient: agentfm.AgentFMClient) -> None:
    llm = ChatAgentFM(model=ENGINE, client=fclient)
    with pytest.raises(lc_exc.ModelAPIError):
        llm.batch(["ok", "FAIL"])


def test_with_retry_resends_only_failed_items(fclient: agentfm.AgentFMClient) -> None:
    spy = ScatterSpy(fclient)
    # No failover inside the scatter, so the flaky item's first failure reaches with_retry.
    llm = ChatAgentFM(model="flaky", client=fclient, max_retries=0)
    inputs = ["r0", "r1 FLAKY", "r2", "r3 FLAKY"]
    out = llm.with_retry(stop_after_attempt=2, wait_exponential_jitter=False).batch(inputs)
    assert spy.calls == [4, 2]
    assert [t in m.text for t, m in zip(inputs, out, strict=True)] == [True] * 4
