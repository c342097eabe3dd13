"""Userinfo in the gateway URL (``http://user:pw@host``) never shows, and is sent as Basic auth.

Issue #15 item 3: every place a URL is shown is checked for the password, against a real
embedded mesh, a refused port and a raw server that records the request heads.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import pickle
import socket
import traceback
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from agentfm import AgentFMClient, AgentFMError, AsyncAgentFMClient, redact_url
from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig
from tests.helpers import call
from tests.sdk.faults._servers import HeadRecorder

if TYPE_CHECKING:
    from collections.abc import Iterator

PASSWORD = f"pw-{uuid.uuid4().hex}"
USER = "alice"
PEER = "12D3KooWJ6Pdbw5PtW1C8y1sViuqoKzeHiKbxz2cNYqeCgnG4yPx"


def with_userinfo(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{PASSWORD}@")


def leaks(text: str) -> bool:
    return PASSWORD in text


def dump_error(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), repr(exc.args), repr(pickle.loads(pickle.dumps(exc)))]
    parts.append("".join(traceback.format_exception(exc)))
    parts.append(repr({k: v for k, v in vars(exc).items() if k != "response"}))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def mesh() -> Iterator[EmbeddedMesh]:
    worker = WorkerConfig("echo", "echo", CallableAgent(lambda p, c: p + "\n"), max_tasks=8)
    with EmbeddedMesh([worker]) as m:
        yield m


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_redact_url() -> None:
    assert redact_url(f"http://{USER}:{PASSWORD}@h:1/x") == "http://***@h:1/x"
    assert redact_url("http://h:1") == "http://h:1"
    assert redact_url(None) is None
    # A redacted URL fed back (a reloaded dump) sends no credentials at all.
    client = AgentFMClient("http://***@h:1", api_key="k" * 20)
    assert client._auth_headers["Authorization"] == "Bearer " + "k" * 20
    assert client.gateway_url == "http://h:1"


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_connection_and_timeout_errors_and_repr_hide_the_password(flavour: str) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    texts: list[str] = []
    client: Any = cls(with_userinfo(closed_port()), api_key=None, retries=0)
    texts += [repr(client), str(client), repr(client.with_options(retries=1))]
    assert "***@" in repr(client)
    for fn, kwargs in (
        (client.health, {}),
        (client.tasks.run, {"worker_id": PEER, "prompt": "x"}),
        (client.workers.list, {}),
    ):
        with pytest.raises(AgentFMError) as caught:
            await call(fn, **kwargs)
        texts.append(dump_error(caught.value))
    results = await call(client.tasks.scatter, ["a", "b"], peer_ids=[PEER], max_retries=0)
    texts += [r.model_dump_json() for r in results] + [str(r.error) for r in results]
    assert all(not r.ok for r in results)
    # A timeout: a listener that accepts and never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = with_userinfo(f"http://127.0.0.1:{silent.getsockname()[1]}")
        slow: Any = cls(url, api_key=None, retries=0, timeout=0.3)
        with pytest.raises(AgentFMError) as caught:
            await call(slow.health)
        texts.append(dump_error(caught.value))
        await call(slow.close)
    await call(client.close)
    assert not [t for t in texts if leaks(t)]


def test_httpx_log_lines_hide_the_password(
    mesh: EmbeddedMesh, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with AgentFMClient(with_userinfo(mesh.url), api_key=None) as client:
        assert client.tasks.run(worker_id=mesh.peer_id("echo"), prompt="hi").text == "hi\n"
        client.workers.list()
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if leaks(r.getMessage())]


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_both_paths_send_the_credentials_as_basic_auth(flavour: str) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    expected = b"authorization: basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).lower()
    with HeadRecorder() as server:
        client: Any = cls(with_userinfo(server.url), api_key=None, retries=0)
        try:
            result = await call(client.tasks.run, worker_id=PEER, prompt="x")
            assert result.text == "ok\n"
            runs = len(server.heads)
            results = await call(client.tasks.scatter, ["a", "b"], peer_ids=[PEER])
            assert [r.text for r in results] == ["ok\n", "ok\n"]
        finally:
            await call(client.close)
    execute = [h for h in server.heads if h.startswith(b"POST /api/execute ")]
    assert len(execute) == 3
    assert runs >= 1
    for head in execute:
        assert expected in head.lower()  # httpx path (run) and lean path (scatter) alike
        assert PASSWORD.encode() not in head  # only inside the base64 token


def test_langchain_dumps_hide_the_password(mesh: EmbeddedMesh) -> None:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.load import dumpd, dumps

    from agentfm_integrations.langchain import AgentFMLLM, ChatAgentFM

    seen: list[str] = []

    class Spy(BaseCallbackHandler):
        def on_chat_model_start(self, serialized: Any, messages: Any, **kw: Any) -> None:
            seen.append(json.dumps([serialized, kw], default=repr))

        def on_llm_start(self, serialized: Any, prompts: Any, **kw: Any) -> None:
            seen.append(json.dumps([serialized, kw], default=repr))

    url = with_userinfo(mesh.url)
    chat = ChatAgentFM(model="echo", gateway_url=url)
    llm = AgentFMLLM(model="echo", gateway_url=url)
    texts: list[str] = []
    for obj in (chat, llm):
        texts += [repr(obj), str(obj), json.dumps(obj.model_dump(), default=repr)]
        texts += [json.dumps(dumpd(obj)), dumps(obj)]
        texts.append(json.dumps(obj._identifying_params, default=repr))
    assert "hi" in str(chat.invoke("hi", config={"callbacks": [Spy()]}).content)
    assert "yo" in llm.invoke("yo", config={"callbacks": [Spy()]})
    assert len(seen) == 2
    assert not [t for t in texts + seen if leaks(t)]


def test_llama_index_dumps_hide_the_password(mesh: EmbeddedMesh) -> None:
    from agentfm_integrations.llama_index import AgentFM

    llm = AgentFM(model="echo", gateway_url=with_userinfo(mesh.url))
    texts = [repr(llm), str(llm), llm.to_json(), json.dumps(llm.to_dict(), default=repr)]
    texts.append(json.dumps(llm.model_dump(), default=repr))
    texts.append(json.dumps(llm.to_payload(), default=repr))
    assert "hi" in llm.complete("hi").text
    assert not [t for t in texts if leaks(t)]


def test_cli_errors_hide_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentfm import cli

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    with contextlib.suppress(SystemExit):
        assert cli.main(["--gateway", with_userinfo(closed_port()), "workers"]) != 0
    text = out.getvalue() + err.getvalue()
    assert "cannot reach the gateway" in text
    assert not leaks(text)
