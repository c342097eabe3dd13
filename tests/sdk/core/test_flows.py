"""Multi-step flows: pure generators that both clients drive with one short loop.

The flow itself is stepped by hand first (no I/O at all), then driven by the sync and the
async client over the same mock gateway, which must see the same requests from both.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from agentfm import AgentFMClient, AsyncAgentFMClient, InvalidRequestError, WorkerNotFoundError
from agentfm._base_client import RequestSpec
from agentfm._flow import Emit, Pump, Sleep
from agentfm.resources.peers import log_flow
from agentfm.resources.workers import get_flow, list_flow

GW = "http://flows.test"
PEER = "12D3KooWFlowsPeer"


def worker(peer_id: str, name: str = "echo") -> dict[str, Any]:
    return {
        "peer_id": peer_id,
        "name": name,
        "engine": "llama",
        "author": "me",
        "status": "AVAILABLE",
        "current_tasks": 0,
        "max_tasks": 2,
    }


def workers_body(*peers: str) -> dict[str, Any]:
    return {"agents": [worker(peer) for peer in peers]}


def waiting(wait_for: int = 2) -> Any:
    return list_flow(None, None, None, False, wait_for, 30.0, 0.01, False)


def test_a_flow_steps_without_any_io() -> None:
    run = Pump(waiting())
    first = run.next()
    assert isinstance(first, RequestSpec)
    assert (first.method, first.path, first.idempotent) == ("GET", "/api/workers", True)
    run.send(workers_body(PEER))
    assert isinstance(run.next(), Sleep)
    assert isinstance(run.next(), RequestSpec)
    run.send(workers_body(PEER, PEER + "2"))
    assert run.next() is None
    assert [w.peer_id for w in run.result or []] == [PEER, PEER + "2"]


def test_a_flow_checks_its_arguments_before_any_request() -> None:
    run = Pump(list_flow(None, None, None, False, -1, 1.0, 1.0, False))
    with pytest.raises(InvalidRequestError):
        run.next()


def test_get_flow_raises_after_the_one_request() -> None:
    run = Pump(get_flow(PEER))
    assert isinstance(run.next(), RequestSpec)
    run.send(workers_body(PEER + "x"))
    with pytest.raises(WorkerNotFoundError):
        run.next()


def _log_page(offset: int, count: int, limit: int) -> dict[str, Any]:
    entries = [
        {
            "entry_hash": f"{offset + i:064x}",
            "kind": "comment",
            "rater_peer_id": PEER,
            "received_at": "2026-01-01T00:00:00Z",
        }
        for i in range(count)
    ]
    return {
        "subject": PEER,
        "entries": entries,
        "returned": count,
        "limit": limit,
        "offset": offset,
    }


def test_log_flow_emits_entries_and_pages_until_a_short_page() -> None:
    run = Pump(log_flow(PEER, 2))
    emitted: list[Any] = []
    requests: list[RequestSpec] = []
    pages = iter([_log_page(0, 2, 2), _log_page(2, 1, 2)])
    while (step := run.next()) is not None:
        if isinstance(step, Emit):
            emitted.append(step.value)
        else:
            assert isinstance(step, RequestSpec)
            requests.append(step)
            run.send(next(pages))
    assert [dict(r.params or {}) for r in requests] == [
        {"limit": "2", "offset": "0"},
        {"limit": "2", "offset": "2"},
    ]
    assert [e.entry_hash for e in emitted] == [f"{i:064x}" for i in range(3)]


class Gateway:
    """A mock gateway answering ``/api/workers`` with a growing list."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        peers = [f"{PEER}{i}" for i in range(len(self.seen))]
        return httpx.Response(200, content=json.dumps(workers_body(*peers)).encode())


def test_sync_and_async_drivers_send_the_same_requests() -> None:
    sync_gateway, async_gateway = Gateway(), Gateway()
    with httpx.Client(transport=httpx.MockTransport(sync_gateway)) as http:
        client = AgentFMClient(GW, http_client=http, api_key=None)
        found = client.workers.list(wait_for_workers=3, poll_interval=0.01)

    async def run_async() -> list[Any]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(async_gateway)) as http:
            aclient = AsyncAgentFMClient(GW, http_client=http, api_key=None)
            return await aclient.workers.list(wait_for_workers=3, poll_interval=0.01)

    async_found = asyncio.run(run_async())
    assert sync_gateway.seen == async_gateway.seen == ["GET /api/workers"] * 3
    assert [w.peer_id for w in found] == [w.peer_id for w in async_found]
    assert len(found) == 3


def test_a_failed_step_closes_the_flow() -> None:
    closed: list[bool] = []

    def flow() -> Any:
        try:
            yield RequestSpec("GET", "/api/workers", idempotent=True)
        finally:
            closed.append(True)

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=b"bad request")

    with httpx.Client(transport=httpx.MockTransport(refuse)) as http:
        client = AgentFMClient(GW, http_client=http, api_key=None, retries=0)
        with pytest.raises(InvalidRequestError):
            client.drive(flow())
    assert closed == [True]
