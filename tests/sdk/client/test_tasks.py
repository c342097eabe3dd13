"""Tasks on real workers: run, stream, artifacts, submit_async, sync and async."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import pytest

import agentfm
from agentfm import (
    AgentFMClient,
    AgentFMTimeoutError,
    AsyncTaskAck,
    IncompleteStreamError,
    TaskChunk,
    TaskResult,
    WebhookPayload,
    WebhookReceiver,
    WorkerNotFoundError,
    WorkerRejectedError,
)
from agentfm.mesh import EmbeddedMesh
from tests.helpers import call, collect
from tests.sdk.client._util import drain_into

if TYPE_CHECKING:
    from pathlib import Path

    from tests.sdk.client.conftest import Gate


MISSING_PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"


async def test_run_echo(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    peer = demo_mesh.peer_id("echo")
    result = await call(any_client.tasks.run, worker_id=peer, prompt="hello mesh")
    assert isinstance(result, TaskResult)
    assert result.text == "hello mesh\n"
    assert result.worker_id == peer == result.peer_id
    assert result.task_id.startswith("task_")
    assert not result.files_incoming
    assert result.artifacts == []
    assert result.duration_seconds > 0


async def test_run_accepts_peer_id_alias_and_task_id(
    any_client: Any, demo_mesh: EmbeddedMesh
) -> None:
    result = await call(
        any_client.tasks.run,
        peer_id=demo_mesh.peer_id("echo"),
        prompt="alias",
        task_id="task_custom-1",
        timeout=30,
    )
    assert result.text == "alias\n"
    assert result.task_id == "task_custom-1"


async def test_run_unknown_worker(any_client: Any) -> None:
    with pytest.raises(WorkerNotFoundError) as info:
        await call(any_client.tasks.run, worker_id=MISSING_PEER, prompt="x")
    assert info.value.status == 404


async def test_stream_chunks_then_marker(
    any_client: Any, demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    stream = any_client.tasks.stream(worker_id=demo_mesh.peer_id("writer"), prompt="a poem")
    assert stream.task_id.startswith("task_")
    assert stream.peer_id == demo_mesh.peer_id("writer")
    chunks = await collect(stream)
    assert all(isinstance(c, TaskChunk) for c in chunks)
    assert chunks[-1] == TaskChunk(text="", kind="marker")
    assert all(c.kind == "text" for c in chunks[:-1])
    assert stream.files_incoming
    files = await call(any_client.tasks.collect_artifacts, stream.task_id)
    assert [f.name for f in files] == ["answer.md"]
    assert files[0].parent == tmp_path / "artifacts" / stream.task_id


async def test_stream_close_early(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    stream = any_client.tasks.stream(worker_id=demo_mesh.peer_id("echo"), prompt="one\ntwo\nthree")
    if hasattr(stream, "__aenter__"):
        async with stream:
            first = await stream.__anext__()
    else:
        with stream:
            first = next(stream)
    assert first.text
    assert await collect(stream) == []


async def test_run_collects_artifacts_over_http(
    any_client: Any, demo_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    result = await call(
        any_client.tasks.run, worker_id=demo_mesh.peer_id("writer"), prompt="a haiku"
    )
    assert result.files_incoming
    assert [p.name for p in result.artifacts] == ["answer.md"]
    assert result.artifacts[0].parent == tmp_path / "artifacts" / result.task_id
    assert result.artifacts[0].read_text()


async def test_run_collects_artifacts_from_a_shared_folder(edge_mesh: EmbeddedMesh) -> None:
    # Pointing artifacts_dir at the gateway's folder is the real gateway's shared-FS mode.
    with AgentFMClient(
        edge_mesh.url, artifacts_dir=edge_mesh.artifacts_dir, api_key=None
    ) as client:
        result = client.tasks.run(worker_id=edge_mesh.peer_id("files"), prompt="content")
    names = sorted(
        p.relative_to(edge_mesh.artifacts_dir / result.task_id).as_posix() for p in result.artifacts
    )
    assert names == ["nested/b.txt", "out.txt"]
    assert not (edge_mesh.artifacts_dir / f"{result.task_id}.zip").exists()


async def test_each_task_gets_its_own_folder(edge_client: Any, edge_mesh: EmbeddedMesh) -> None:
    peer = edge_mesh.peer_id("files")
    one = await call(edge_client.tasks.run, worker_id=peer, prompt="one")
    two = await call(edge_client.tasks.run, worker_id=peer, prompt="two")
    read = {p.read_text() for p in one.artifacts + two.artifacts if p.name == "out.txt"}
    assert read == {"one", "two"}


async def test_broken_stream_is_incomplete(edge_client: Any, edge_mesh: EmbeddedMesh) -> None:
    chunks: list[TaskChunk] = []
    stream = edge_client.tasks.stream(worker_id=edge_mesh.peer_id("breaker"), prompt="x")
    with pytest.raises(IncompleteStreamError):
        await drain_into(stream, chunks)
    assert "".join(c.text for c in chunks) == "first line\nhalf a li"
    with pytest.raises(IncompleteStreamError):
        await call(edge_client.tasks.run, worker_id=edge_mesh.peer_id("breaker"), prompt="x")


async def test_agent_crash_is_a_typed_failure(edge_client: Any, edge_mesh: EmbeddedMesh) -> None:
    # The worker writes "⚠️  Sandbox exited: …" and then its normal marker (§5.4).
    with pytest.raises(agentfm.AgentExitError) as caught:
        await call(edge_client.tasks.run, worker_id=edge_mesh.peer_id("crasher"), prompt="x")
    assert caught.value.exit_detail
    assert caught.value.task_started
    assert caught.value.peer_id == edge_mesh.peer_id("crasher")


async def test_rejection_is_typed(edge_client: Any, edge_mesh: EmbeddedMesh, gate: Gate) -> None:
    holder = edge_mesh.peer_id("holder")
    with AgentFMClient(edge_mesh.url, api_key=None) as side:
        busy = threading.Thread(
            target=side.tasks.run, kwargs={"worker_id": holder, "prompt": "hold"}
        )
        busy.start()
        assert await asyncio.to_thread(gate.entered.wait, 10)
        try:
            with pytest.raises(WorkerRejectedError, match="max capacity"):
                await call(edge_client.tasks.run, worker_id=holder, prompt="second")
        finally:
            gate.release.set()
            await asyncio.to_thread(busy.join, 10)


async def test_timeout_bounds_a_task(edge_client: Any, edge_mesh: EmbeddedMesh) -> None:
    with pytest.raises(AgentFMTimeoutError):
        await call(
            edge_client.tasks.run, worker_id=edge_mesh.peer_id("slow"), prompt="x", timeout=0.5
        )


async def test_submit_async_and_webhook(any_client: Any, demo_mesh: EmbeddedMesh) -> None:
    ack = await call(
        any_client.tasks.submit_async, worker_id=demo_mesh.peer_id("echo"), prompt="later"
    )
    assert isinstance(ack, AsyncTaskAck)
    assert ack.task_id.startswith("task_")
    assert ack.status == "queued"


async def test_submit_async_delivers_a_signed_webhook(tmp_path: Path) -> None:
    from agentfm import AsyncAgentFMClient

    got: list[WebhookPayload] = []
    done = threading.Event()

    def callback(payload: WebhookPayload) -> None:
        got.append(payload)
        done.set()

    with (
        EmbeddedMesh.demo(webhook_secret="hook-secret", allow_private_webhooks=True) as mesh,
        WebhookReceiver(port=0, callback=callback, secret="hook-secret") as hook,
    ):
        peer = mesh.peer_id("echo")
        async with AsyncAgentFMClient(mesh.url, api_key=None) as aclient:
            ack = await aclient.tasks.submit_async(
                worker_id=peer, prompt="ping", webhook_url=hook.url
            )
        assert await asyncio.to_thread(done.wait, 20)
    assert got[0].task_id == ack.task_id
    assert got[0].worker_id == peer
    assert got[0].status == "completed"
