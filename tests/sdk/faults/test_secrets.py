"""Secrets: the API key never shows in repr, logs, errors, tracing or serialization."""

from __future__ import annotations

import json
import logging
import pickle
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from agentfm import AgentFMClient, AgentFMError, AsyncAgentFMClient
from agentfm.mesh import AuthConfigError, CallableAgent, EmbeddedMesh, WorkerConfig
from tests.helpers import call

if TYPE_CHECKING:
    from collections.abc import Iterator

KEY = f"sk-agentfm-{uuid.uuid4().hex}"
WRONG = f"sk-wrong-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def mesh() -> Iterator[EmbeddedMesh]:
    worker = WorkerConfig("echo", "echo", CallableAgent(lambda p, c: p + "\n"), max_tasks=8)
    with EmbeddedMesh([worker], api_keys=[KEY]) as m:
        yield m


def leaks(text: str) -> bool:
    return KEY in text or WRONG in text


def dump_error(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), repr(exc.args), repr(pickle.loads(pickle.dumps(exc)))]
    parts.append(repr({k: v for k, v in vars(exc).items() if k != "response"}))
    return "\n".join(parts)


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_key_stays_out_of_repr_logs_and_errors(
    mesh: EmbeddedMesh, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    peer = mesh.peer_id("echo")
    good: Any = cls(mesh.url, api_key=KEY, retries=1)
    bad: Any = good.with_options(api_key=WRONG)
    texts = [repr(good), repr(bad), str(good), repr(vars(good).get("_shared"))]
    try:
        assert (await call(good.tasks.run, worker_id=peer, prompt="hi")).text == "hi\n"
        results = await call(good.tasks.scatter, ["a", "b"], peer_ids=[peer])
        assert all(r.ok for r in results)
        texts += [r.model_dump_json() for r in results]
        for fn, kwargs in (
            (bad.workers.list, {}),
            (bad.tasks.run, {"worker_id": peer, "prompt": "x"}),
            (bad.openai.models.list, {}),
        ):
            with pytest.raises(AgentFMError) as err:
                await call(fn, **kwargs)
            texts.append(dump_error(err.value))
        failed = await call(bad.tasks.scatter, ["a"], peer_ids=[peer], max_retries=1)
        texts.append(failed[0].model_dump_json())
        texts.append(str(failed[0].error))
    finally:
        await call(bad.close)
        await call(good.close)
    texts.append(caplog.text)
    texts += [repr(r.args) for r in caplog.records]
    assert caplog.records  # the check would be vacuous with logging off
    assert not any(leaks(t) for t in texts)


def test_gateway_never_echoes_keys(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    short = "short-" + uuid.uuid4().hex[:6]
    with pytest.raises(AuthConfigError) as err:
        EmbeddedMesh([], api_keys=[KEY, short]).start()
    assert short not in str(err.value)
    with EmbeddedMesh([], api_keys=[KEY]) as m:
        text = repr(m)
    assert KEY not in text
    assert KEY not in caplog.text


# -- framework integrations: serialization and tracing ------------------------------------


def test_langchain_objects_never_serialize_the_key(mesh: EmbeddedMesh) -> None:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.load import dumpd, dumps

    from agentfm_integrations.langchain import AgentFMLLM, AgentFMTool, ChatAgentFM

    seen: list[str] = []

    class Tracer(BaseCallbackHandler):
        def on_chat_model_start(self, serialized: Any, messages: Any, **kw: Any) -> None:
            seen.append(json.dumps([serialized, kw], default=repr))

        def on_llm_start(self, serialized: Any, prompts: Any, **kw: Any) -> None:
            seen.append(json.dumps([serialized, kw], default=repr))

        def on_tool_start(self, serialized: Any, input_str: Any, **kw: Any) -> None:
            seen.append(json.dumps([serialized, kw], default=repr))

    chat = ChatAgentFM(model="echo", gateway_url=mesh.url, api_key=KEY)
    llm = AgentFMLLM(model="echo", gateway_url=mesh.url, api_key=KEY)
    tool = AgentFMTool(model="echo", gateway_url=mesh.url, api_key=KEY)
    assert chat.invoke("hi", config={"callbacks": [Tracer()]}).content
    assert llm.invoke("hi", config={"callbacks": [Tracer()]})
    texts = [*seen]
    for obj in (chat, llm, tool):
        texts += [repr(obj), str(obj), json.dumps(obj.model_dump(), default=repr)]
        texts += [json.dumps(dumpd(obj)), dumps(obj)]
    texts.append(json.dumps(chat._get_ls_params(), default=repr))
    texts.append(json.dumps(chat._identifying_params, default=repr))
    assert seen
    assert not any(KEY in t for t in texts)


def test_llama_index_objects_never_serialize_the_key(mesh: EmbeddedMesh) -> None:
    from agentfm_integrations.llama_index import AgentFM

    llm = AgentFM(model="echo", gateway_url=mesh.url, api_key=KEY)
    assert llm.complete("hi").text
    texts = [repr(llm), str(llm), llm.to_json(), json.dumps(llm.to_dict(), default=repr)]
    texts.append(llm.model_dump_json())
    texts.append(repr(llm.metadata))
    assert not any(KEY in t for t in texts)
