"""Scatter on real workers: ordering, failover, capacity, concurrency, sync and async."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import pytest

from agentfm import AgentFMClient, ScatterProgress, ScatterResult, WorkerNotFoundError
from tests.helpers import call
from tests.sdk.client.conftest import WIDE, Gate

if TYPE_CHECKING:
    from agentfm.mesh import EmbeddedMesh

MISSING_PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"


async def test_scatter_in_order(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    peers = [w.peer_id for w in demo_mesh.workers if w.name == "echo"]
    prompts = [f"prompt {i}" for i in range(10)]
    progress: list[ScatterProgress] = []
    results = await call(
        any_client.tasks.scatter,
        prompts,
        peer_ids=peers,
        max_concurrency=4,
        on_progress=progress.append,
    )
    assert [r.index for r in results] == list(range(10))
    assert [r.text for r in results] == [p + "\n" for p in prompts]
    assert all(isinstance(r, ScatterResult) and r.ok and r.worker_id in peers for r in results)
    assert all(r.task_id and r.task_id.startswith("task_") and r.attempts == 1 for r in results)
    assert progress[-1] == ScatterProgress(
        total=10, done=10, succeeded=10, failed=0, in_flight=0, failovers=0
    )


async def test_scatter_fails_over_to_an_untried_peer(
    any_client: Any, demo_mesh: EmbeddedMesh
) -> None:
    good = demo_mesh.peer_id("echo")
    results = await call(
        any_client.tasks.scatter, ["a", "b", "c"], peer_ids=[MISSING_PEER, good], max_retries=1
    )
    assert all(r.ok and r.worker_id == good for r in results)
    assert any(r.peers_tried == [MISSING_PEER, good] for r in results)


async def test_scatter_reports_failures_without_raising(any_client: Any) -> None:
    results = await call(
        any_client.tasks.scatter, ["a", "b"], peer_ids=[MISSING_PEER], max_retries=2
    )
    assert [r.status for r in results] == ["failed", "failed"]
    # 404 "Worker not found": asking the same id again cannot help, so one attempt each.
    assert all(r.attempts == 1 and r.error and r.exception is not None for r in results)
    assert all(isinstance(r.exception, WorkerNotFoundError) for r in results)
    assert await call(any_client.tasks.scatter, [], peer_ids=[MISSING_PEER]) == []


async def test_scatter_iter_yields_every_index_once(
    any_client: Any, demo_mesh: EmbeddedMesh
) -> None:
    peers = [w.peer_id for w in demo_mesh.workers if w.name == "echo"]
    iterator = any_client.tasks.scatter_iter(
        [f"p{i}" for i in range(8)], peer_ids=peers, max_concurrency=3
    )
    if hasattr(iterator, "__aiter__"):
        indexes = [r.index async for r in iterator]
    else:
        indexes = [r.index for r in iterator]
    assert sorted(indexes) == list(range(8))


async def test_scatter_by_model(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    results = await call(
        any_client.tasks.scatter_by_model, ["x", "y"], model="echo", max_concurrency=2
    )
    echo_peers = {w.peer_id for w in demo_mesh.workers if w.name == "echo"}
    assert [r.text for r in results] == ["x\n", "y\n"]
    assert {r.worker_id for r in results} <= echo_peers
    one = await call(any_client.tasks.scatter_by_model, ["z"], model="echo", max_workers=1)
    assert one[0].ok
    picked = await call(
        any_client.tasks.scatter_by_model,
        ["w"],
        model="echo",
        pick=lambda ws: ws[-1:],
        wait_for_workers=2,
    )
    assert picked[0].ok


async def test_scatter_with_artifacts(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    results = await call(
        any_client.tasks.scatter, ["a", "b"], peer_ids=[demo_mesh.peer_id("writer")]
    )
    assert all(len(r.artifacts) == 1 for r in results)
    assert len({r.artifacts[0].parent for r in results}) == 2


async def test_scatter_fails_over_when_a_worker_rejects(
    edge_client: Any, edge_mesh: EmbeddedMesh, gate: Gate
) -> None:
    holder, files = edge_mesh.peer_id("holder"), edge_mesh.peer_id("files")
    with AgentFMClient(edge_mesh.url, api_key=None) as side:
        busy = threading.Thread(
            target=side.tasks.run, kwargs={"worker_id": holder, "prompt": "hold"}
        )
        busy.start()
        assert await asyncio.to_thread(gate.entered.wait, 10)
        try:
            results = await call(
                edge_client.tasks.scatter, ["p"], peer_ids=[holder, files], max_retries=1
            )
        finally:
            gate.release.set()
            await asyncio.to_thread(busy.join, 10)
    assert results[0].ok
    assert results[0].worker_id == files


@pytest.mark.slow
async def test_max_concurrency_64_really_runs_64(
    edge_client: Any, edge_mesh: EmbeddedMesh, gate: Gate
) -> None:
    prompts = [f"p{i}" for i in range(WIDE)]
    results = await call(
        edge_client.tasks.scatter,
        prompts,
        peer_ids=[edge_mesh.peer_id("wide")],
        max_concurrency=WIDE,
    )
    assert all(r.ok for r in results)
    assert gate.peak == WIDE


async def test_sync_client_shared_by_many_threads(demo_mesh: EmbeddedMesh, tmp_path: Any) -> None:
    peers = [w.peer_id for w in demo_mesh.workers if w.name == "echo"]
    errors: list[BaseException] = []
    texts: list[str] = []
    lock = threading.Lock()
    with AgentFMClient(demo_mesh.url, api_key=None) as client:

        def work(n: int) -> None:
            try:
                for i in range(5):
                    r = client.tasks.run(worker_id=peers[(n + i) % 2], prompt=f"t{n}-{i}")
                    client.workers.list()
                    with lock:
                        texts.append(r.text)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        # Four threads never exceed one echo worker's four slots, so every task must succeed.
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
    assert sorted(texts) == sorted(f"t{n}-{i}\n" for n in range(4) for i in range(5))


async def test_scatter_reruns_a_broken_stream_on_an_untried_peer(
    edge_client: Any, edge_mesh: EmbeddedMesh
) -> None:
    breaker, files = edge_mesh.peer_id("breaker"), edge_mesh.peer_id("files")
    [result] = await call(
        edge_client.tasks.scatter, ["x"], peer_ids=[breaker, files], max_retries=3
    )
    assert result.ok
    assert result.attempts == 2
    assert result.peers_tried == [breaker, files]
    [alone] = await call(edge_client.tasks.scatter, ["x"], peer_ids=[breaker], max_retries=0)
    assert not alone.ok
    assert alone.text == ""  # the partial output of a broken stream is never a result
    assert type(alone.exception).__name__ == "IncompleteStreamError"


async def test_scatter_per_prompt_timeout(edge_client: Any, edge_mesh: EmbeddedMesh) -> None:
    slow = edge_mesh.peer_id("slow")
    [result] = await call(edge_client.tasks.scatter, ["x"], peer_ids=[slow], timeout=0.5)
    assert not result.ok
    assert type(result.exception).__name__ == "AgentFMTimeoutError"
