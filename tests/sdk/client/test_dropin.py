"""What a 0.3.0 user relies on: short ids, respx mocks that see scatter, 0.3.0 error classes.

The embedded mesh cannot produce a connection cut after the request was sent or a plain-text
500, so those wire cases use respx; everything else runs against the mesh.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx

import agentfm
from agentfm import (
    AgentFMClient,
    AsyncAgentFMClient,
    GatewayConnectionError,
    GatewayInternalError,
    GatewayProtocolError,
    WorkerNotFoundError,
    WorkerStreamError,
    WorkerUnreachableError,
)
from agentfm._fast_path import use_fast_path
from tests.helpers import call, collect

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh

URL = "http://gateway.test"
BODY = b"hello from the mock\n\n[AGENTFM: NO_FILES]\n"


@pytest.fixture(params=["sync", "async"])
async def mocked_client(request: pytest.FixtureRequest) -> Any:
    if request.param == "sync":
        with AgentFMClient(URL, api_key=None, retries=0) as c:
            yield c
    else:
        async with AsyncAgentFMClient(URL, api_key=None, retries=0) as c:
            yield c


async def test_respx_sees_every_scatter_request(mocked_client: Any) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{URL}/api/workers").mock(return_value=httpx.Response(200, json=[]))
        execute = mock.post(f"{URL}/api/execute").mock(
            return_value=httpx.Response(200, content=BODY)
        )
        assert not use_fast_path(mocked_client)
        results = await call(
            mocked_client.tasks.scatter, ["a", "b", "c"], peer_ids=["12D3KooWA", "12D3KooWB"]
        )
    assert [r.status for r in results] == ["success"] * 3
    assert [r.text for r in results] == ["hello from the mock\n"] * 3
    assert execute.call_count == 3
    sent = sorted(call.request.content for call in execute.calls)
    assert all(b'"worker_id": "12D3KooW' in body for body in sent)
    # Without the mock the same client takes the fast path again.
    assert use_fast_path(mocked_client)


async def test_a_replaced_tasks_run_serves_scatter(
    monkeypatch: pytest.MonkeyPatch, mocked_client: Any
) -> None:
    seen: list[tuple[str, str]] = []

    def fake_run(*, worker_id: str, prompt: str) -> agentfm.TaskResult:
        seen.append((worker_id, prompt))
        return agentfm.TaskResult(worker_id=agentfm.PeerID(worker_id), text=prompt.upper())

    async def afake_run(*, worker_id: str, prompt: str) -> agentfm.TaskResult:
        return fake_run(worker_id=worker_id, prompt=prompt)

    is_async = isinstance(mocked_client, AsyncAgentFMClient)
    monkeypatch.setattr(mocked_client.tasks, "run", afake_run if is_async else fake_run)
    monkeypatch.setattr(mocked_client.workers, "_fetch", _no_workers(is_async))
    results = await call(mocked_client.tasks.scatter, ["x", "y"], peer_ids=["nope"])
    assert [r.text for r in results] == ["X", "Y"]
    assert sorted(seen) == [("nope", "x"), ("nope", "y")]


def _no_workers(is_async: bool) -> Any:
    def fetch() -> list[agentfm.WorkerProfile]:
        return []

    async def afetch() -> list[agentfm.WorkerProfile]:
        return []

    return afetch if is_async else fetch


@pytest.mark.parametrize("cut", [httpx.RemoteProtocolError, httpx.ReadError])
async def test_a_cut_after_the_request_was_sent_is_a_worker_stream_error(
    mocked_client: Any, cut: type[httpx.TransportError]
) -> None:
    with respx.mock:
        respx.post(f"{URL}/api/execute").mock(side_effect=cut("server closed the connection"))
        with pytest.raises(WorkerStreamError) as caught:
            await call(mocked_client.tasks.run, worker_id="12D3KooWA", prompt="hi")
    assert "could not reach" not in str(caught.value)
    assert caught.value.code == "worker_stream_failed"


async def test_a_refused_connection_is_still_a_gateway_connection_error(
    unused_tcp_port: int,
) -> None:
    with AgentFMClient(f"http://127.0.0.1:{unused_tcp_port}", api_key=None, retries=0) as c:
        with pytest.raises(GatewayConnectionError):
            c.tasks.run(worker_id="12D3KooWA", prompt="hi")
        with pytest.raises(GatewayConnectionError):
            list(c.tasks.stream(worker_id="12D3KooWA", prompt="hi"))


@pytest.mark.parametrize(
    ("status", "text", "typed"),
    [
        (500, "Failed to connect to worker via DHT or Relay", WorkerUnreachableError),
        (500, "Failed to send prompt", WorkerStreamError),
        (500, "something else broke", GatewayInternalError),
        (502, "Bad Gateway", WorkerUnreachableError),
        (503, "Service Unavailable", GatewayProtocolError),
        (504, "Gateway Timeout", GatewayProtocolError),
    ],
)
async def test_a_plain_text_5xx_is_a_gateway_protocol_error(
    mocked_client: Any, status: int, text: str, typed: type[Exception]
) -> None:
    with respx.mock:
        respx.post(f"{URL}/api/execute").mock(return_value=httpx.Response(status, text=text))
        with pytest.raises(GatewayProtocolError) as caught:
            await call(mocked_client.tasks.run, worker_id="12D3KooWA", prompt="hi")
    assert isinstance(caught.value, typed)
    assert caught.value.status == status


async def test_short_placeholder_ids_reach_the_gateway(any_client: Any) -> None:
    # The gateway, not the client, says an id is unknown: plain-text 404.
    for placeholder in ("12D3KooWA", "12D3KooWAlpha", "nope"):
        with pytest.raises(WorkerNotFoundError) as caught:
            await call(any_client.tasks.run, worker_id=placeholder, prompt="hi")
        assert caught.value.status == 404
        with pytest.raises(WorkerNotFoundError):
            await collect(any_client.tasks.stream(worker_id=placeholder, prompt="   "))
        with pytest.raises(WorkerNotFoundError):
            await call(any_client.workers.get, placeholder)


async def test_whitespace_prompt_is_sent(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    peer = next(w.peer_id for w in demo_mesh.workers if w.name == "echo")
    result = await call(any_client.tasks.run, worker_id=peer, prompt="   ")
    assert result.worker_id == peer


def test_make_client_shims() -> None:
    from agentfm.async_client import make_async_client
    from agentfm.client import make_client

    sync = make_client("http://127.0.0.1:9/", api_key="k" * 12)
    assert str(sync.base_url) == "http://127.0.0.1:9"
    assert sync.headers["Authorization"] == "Bearer " + "k" * 12
    assert sync.follow_redirects is False
    sync.close()
    asyncc = make_async_client("http://127.0.0.1:9", timeout=5.0)
    assert isinstance(asyncc, httpx.AsyncClient)
    assert "Authorization" not in asyncc.headers
    assert asyncc.timeout.read == 5.0
    asyncio.run(asyncc.aclose())


def test_scatter_under_respx_without_a_workers_route() -> None:
    # 0.3.0 scatter never asked for telemetry, so 0.3.0 mocks do not define /api/workers;
    # the SDK's telemetry fetch is best effort and must not fail the scatter.
    with respx.mock(base_url=URL, assert_all_called=True) as mock:
        execute = mock.post("/api/execute").mock(return_value=httpx.Response(200, content=BODY))
        with AgentFMClient(URL, api_key=None) as client:
            results = client.tasks.scatter(["a", "b"], peer_ids=["12D3KooWX"])
    assert [r.ok for r in results] == [True, True]
    assert execute.call_count == 2


def test_0_3_0_routing_warning_reset_and_placeholders() -> None:
    from agentfm.openai._namespaces import _warned_about_routing
    from agentfm.resources.openai._common import GLOBAL_WARNER

    assert _warned_about_routing is GLOBAL_WARNER._seen
    _warned_about_routing.discard("dropin-llama")
    with pytest.warns(agentfm.AgentFMRoutingWarning):
        GLOBAL_WARNER.check("dropin-llama")
    _warned_about_routing.discard("dropin-llama")
    with pytest.warns(agentfm.AgentFMRoutingWarning):
        GLOBAL_WARNER.check("dropin-llama")  # warns again once reset, as 0.3.0 tests expect
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GLOBAL_WARNER.check("12D3KooWPidExample")  # a placeholder meant as a peer id
