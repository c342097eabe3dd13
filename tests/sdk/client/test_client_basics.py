"""Client lifecycle, health, workers and validation, sync and async, on the demo mesh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from agentfm import (
    AgentFMClient,
    AsyncAgentFMClient,
    GatewayConnectionError,
    InvalidRequestError,
    NoWorkerForModelError,
    WorkerNotFoundError,
    WorkerProfile,
)
from tests.helpers import call, collect

if TYPE_CHECKING:
    from pathlib import Path

    from agentfm.mesh import EmbeddedMesh

MISSING_PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"


async def test_ping_and_health(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    assert await call(any_client.ping) is True
    health = await call(any_client.health)
    assert health["status"] == "ok"
    assert health["online_workers"] == len(demo_mesh.workers)


async def test_ping_false_when_unreachable(unused_tcp_port: int) -> None:
    with AgentFMClient(f"http://127.0.0.1:{unused_tcp_port}", retries=0, api_key=None) as client:
        assert client.ping() is False
    async with AsyncAgentFMClient(
        f"http://127.0.0.1:{unused_tcp_port}", retries=0, api_key=None
    ) as aclient:
        assert await aclient.ping() is False
        with pytest.raises(GatewayConnectionError):
            await aclient.health()


async def test_workers_list_and_filters(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    workers = await call(any_client.workers.list)
    assert {w.peer_id for w in workers} == {w.peer_id for w in demo_mesh.workers}
    assert all(isinstance(w, WorkerProfile) and w.peer_id.startswith("12D3KooW") for w in workers)
    echoes = await call(any_client.workers.list, model="ECHO")
    assert len(echoes) == 2
    assert all(w.engine == "echo" for w in echoes)
    assert await call(any_client.workers.list, agent_name="writer", available_only=True)
    assert await call(any_client.workers.list, author="nobody-at-all") == []
    waited = await call(
        any_client.workers.list,
        model="echo",
        wait_for_workers=5,
        poll_timeout=0.2,
        poll_interval=0.05,
    )
    assert len(waited) == 2
    assert await call(any_client.workers.list, include_offline=True)


async def test_workers_get_and_match(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    peer = demo_mesh.peer_id("writer")
    worker = await call(any_client.workers.get, peer)
    assert worker.peer_id == peer
    assert worker.agent_name == "writer"
    # Any id is passed on; one the listing lacks is a WorkerNotFoundError, short or not.
    for absent in (MISSING_PEER, "writer", "12D3KooWA"):
        with pytest.raises(WorkerNotFoundError):
            await call(any_client.workers.get, absent)
    with pytest.raises(InvalidRequestError):
        await call(any_client.workers.get, "")
    matched = await call(any_client.workers.match, "echo")
    assert len(matched) == 2
    assert [w.peer_id for w in await call(any_client.workers.match, peer)] == [peer]
    assert await call(any_client.workers.match, "no-such-model") == []


def _invalid_calls(client: Any, peer: str) -> list[Any]:
    """Calls that must fail validation before sending anything."""
    tasks = client.tasks
    return [
        lambda: tasks.run(worker_id=peer, prompt=""),
        lambda: tasks.run(worker_id="", prompt="hi"),
        lambda: tasks.run(worker_id=peer, prompt="hi", timeout=0),
        lambda: tasks.run(worker_id=peer, prompt="hi", task_id="../evil"),
        lambda: tasks.run(worker_id=peer, peer_id=MISSING_PEER[:-1] + "a", prompt="hi"),
        lambda: tasks.stream(worker_id=peer, prompt=""),
        lambda: tasks.submit_async(worker_id=peer, prompt=""),
        lambda: tasks.scatter(["a"], peer_ids=[peer], max_concurrency=0),
        lambda: tasks.scatter(["a"], peer_ids=[]),
        lambda: tasks.scatter(["a", ""], peer_ids=[peer]),
        lambda: tasks.scatter(["a"], peer_ids=[peer], timeout=-1),
        lambda: tasks.scatter_iter(["a"], peer_ids=[peer], max_retries=-1),
        lambda: tasks.scatter_by_model([""], model="echo"),
        lambda: client.openai.chat.completions.create(
            model="", messages=[{"role": "user", "content": "x"}]
        ),
        lambda: client.openai.chat.completions.create(model="echo", messages=[]),
        lambda: client.openai.completions.create(model="echo", prompt=""),
        lambda: client.openai.completions.create(model="echo", prompt="x", timeout=-2),
    ]


async def test_bad_input_is_rejected_before_any_request(
    unused_tcp_port: int, tmp_path: Path
) -> None:
    # Nothing listens on this port: a request would raise GatewayConnectionError instead.
    url = f"http://127.0.0.1:{unused_tcp_port}"
    peer = MISSING_PEER
    for client in (AgentFMClient(url, api_key=None), AsyncAgentFMClient(url, api_key=None)):
        for case in _invalid_calls(client, peer):
            with pytest.raises(InvalidRequestError):
                await call(case)
        await call(client.close)


async def test_constructor_validation_and_env(
    monkeypatch: pytest.MonkeyPatch, demo_mesh: EmbeddedMesh
) -> None:
    # A bad scheme is raised where 0.3.0 raised it: at the first request.
    bad = AgentFMClient("ftp://nowhere")
    with pytest.raises(InvalidRequestError, match="gateway"):
        bad.workers.list()
    bad.close()
    abad = AsyncAgentFMClient("nowhere:8080")
    with pytest.raises(InvalidRequestError, match="gateway"):
        await abad.workers.list()
    await abad.aclose()
    # The scheme check is case-insensitive.
    with AgentFMClient(demo_mesh.url.replace("http://", "HTTP://")) as upper:
        assert upper.ping()
        assert upper.workers.list()
    with pytest.raises(InvalidRequestError):
        AgentFMClient(demo_mesh.url, retries=-1)
    monkeypatch.setenv("AGENTFM_GATEWAY_URL", demo_mesh.url + "/")
    monkeypatch.setenv("AGENTFM_API_KEY", "k" * 20)
    with AgentFMClient() as client:
        assert client.gateway_url == demo_mesh.url
        assert client.api_key == "k" * 20
        assert "k" * 20 not in repr(client)
        assert client.ping()
    with AgentFMClient(api_key=None) as client:
        assert client.api_key is None


async def test_with_options_shares_the_pool(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    child = any_client.with_options(retries=0, timeout=5.0)
    assert child.retries == 0
    assert any_client.retries == 2
    assert child._http is any_client._http
    await call(child.close)
    # The parent still works after the child is closed.
    assert await call(any_client.ping)
    with pytest.raises(TypeError):
        any_client.with_options(nope=1)


async def test_scatter_by_model_unknown_model(any_client: Any) -> None:
    with pytest.raises(NoWorkerForModelError) as info:
        await call(any_client.tasks.scatter_by_model, ["a"], model="no-such-model")
    assert isinstance(info.value, WorkerNotFoundError)


async def test_stream_helpers_drain(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    chunks = await collect(any_client.tasks.stream(worker_id=demo_mesh.peer_id("echo"), prompt="x"))
    assert "".join(c.text for c in chunks) == "x\n"
