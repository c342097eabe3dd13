"""Faults: crashing, hanging, flooding and lying workers; resets, restarts, limits."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from agentfm import (
    AgentExitError,
    AgentFMClient,
    AgentFMError,
    AgentFMTimeoutError,
    AsyncAgentFMClient,
    AsyncCapacityError,
    AuthenticationError,
    GatewayConnectionError,
    IncompleteStreamError,
    RateLimitError,
    WorkerStreamError,
)
from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig
from tests.helpers import call, collect
from tests.sdk.faults.conftest import FLOOD_BYTES, alive, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# A syntactically valid peer id nobody serves; the raw-socket gateway accepts any.
FAKE_PEER = "12D3KooWHxdGLkUwaYwF3JgRsMq4VfBGmK1ZD5uEytCrNZ3WzYbD"


async def drain_into(stream: Any, sink: list[Any]) -> None:
    """Collect a sync or async stream into ``sink`` until it ends or raises."""
    if hasattr(stream, "__aiter__"):
        async for chunk in stream:
            sink.append(chunk)
    else:
        for chunk in stream:
            sink.append(chunk)


def metric(mesh: EmbeddedMesh, line_prefix: str) -> float:
    import httpx

    for line in httpx.get(mesh.url + "/metrics").text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- a worker crashes mid-stream ------------------------------------------------------------


async def test_worker_vanishing_mid_stream_is_incomplete(
    fclient: Any, fault_mesh: EmbeddedMesh
) -> None:
    vanish = fault_mesh.peer_id("vanish")
    chunks: list[Any] = []
    stream = fclient.tasks.stream(worker_id=vanish, prompt="x")
    with pytest.raises(IncompleteStreamError) as err:
        await drain_into(stream, chunks)
    assert "".join(c.text for c in chunks) == "partial answer\ncut in the mid"
    assert err.value.task_started


async def test_scatter_with_a_crashing_worker_and_no_failover(
    fclient: Any, fault_mesh: EmbeddedMesh
) -> None:
    vanish, echo = fault_mesh.peer_id("vanish"), fault_mesh.peer_id("echo")
    prompts = [f"p{i}" for i in range(12)]
    results = await call(
        fclient.tasks.scatter, prompts, peer_ids=[vanish, echo], max_concurrency=6, max_retries=0
    )
    assert [r.index for r in results] == list(range(12))
    assert all(r.attempts == 1 for r in results)
    for r in results:
        if r.worker_id == echo:
            assert r.ok
            assert r.text == r.prompt + "\n"
        else:
            assert not r.ok
            assert isinstance(r.exception, IncompleteStreamError)
    assert {r.worker_id for r in results} == {vanish, echo}


async def test_scatter_fails_over_from_a_crashing_worker(
    fclient: Any, fault_mesh: EmbeddedMesh
) -> None:
    vanish, echo = fault_mesh.peer_id("vanish"), fault_mesh.peer_id("echo")
    prompts = [f"p{i}" for i in range(12)]
    results = await call(
        fclient.tasks.scatter, prompts, peer_ids=[vanish, echo], max_concurrency=6, max_retries=2
    )
    assert [r.index for r in results] == list(range(12))
    assert all(r.ok and r.worker_id == echo and r.text == r.prompt + "\n" for r in results)
    assert any(r.peers_tried == [vanish, echo] for r in results)


async def test_subprocess_killed_mid_line_reports_sandbox_exit_and_frees_the_slot(
    fclient: Any, fault_mesh: EmbeddedMesh
) -> None:
    peer = fault_mesh.peer_id("suicide")
    for _ in range(2):  # the second run proves the slot was released
        # "⚠️  Sandbox exited" then the normal marker: a failed task, not a success.
        with pytest.raises(AgentExitError) as caught:
            await call(fclient.tasks.run, worker_id=peer, prompt="x")
        assert caught.value.killed
        assert caught.value.text == "partial output\nhalf a li"  # glued to the cut line
        assert not caught.value.files_incoming


# -- a worker hangs with no output ----------------------------------------------------------


async def test_hung_worker_times_out_and_its_process_group_is_killed(
    fclient: Any, fault_mesh: EmbeddedMesh, tmp_path: Path
) -> None:
    peer = fault_mesh.peer_id("hang")
    pid_file = tmp_path / "pids"
    with pytest.raises(AgentFMTimeoutError):
        await call(fclient.tasks.run, worker_id=peer, prompt=str(pid_file), timeout=1.5)
    assert await asyncio.to_thread(wait_until, pid_file.exists)
    leader, grandchild = (int(p) for p in pid_file.read_text().split())
    # The client hung up, so the gateway cancels the task and kills the whole group.
    assert await asyncio.to_thread(wait_until, lambda: not alive(leader) and not alive(grandchild))
    worker = next(w for w in fault_mesh.workers if w.peer_id == peer)
    assert await asyncio.to_thread(wait_until, lambda: worker.current_tasks == 0)


# -- partial UTF-8 and an 8 MiB line ----------------------------------------------------------


async def test_partial_utf8_and_an_8_mib_line(fclient: Any, fault_mesh: EmbeddedMesh) -> None:
    result = await call(fclient.tasks.run, worker_id=fault_mesh.peer_id("flood"), prompt="x")
    expected = "€" + "a" * FLOOD_BYTES + "😀\n"
    assert len(result.text) == len(expected)
    assert result.text == expected
    assert "\ufffd" not in result.text
    assert not result.files_incoming


@pytest.mark.timeout(30)
def test_marker_decoder_is_linear_on_a_whitespace_flood() -> None:
    # The real gateway forwards output in reads of at most 1 KiB. A long line of leading
    # blanks is still a possible marker prefix, so it must be held without rescanning.
    from agentfm._streaming import MarkerDecoder

    decoder = MarkerDecoder()
    text: list[str] = []
    blob = b" " * FLOOD_BYTES + b"tail\n\n[AGENTFM: NO_FILES]\n"
    for start in range(0, len(blob), 1024):
        text += decoder.feed(blob[start : start + 1024])
    text += decoder.flush()
    decoder.raise_for_end()
    assert "".join(text) == " " * FLOOD_BYTES + "tail\n"


@pytest.mark.timeout(60)
def test_gateway_line_splitter_is_linear_on_a_token_by_token_line() -> None:
    # An LLM worker streams a long paragraph a few bytes at a time to the OpenAI routes.
    from agentfm.mesh._openai import LineSplitter

    splitter = LineSplitter()
    lines: list[bytes] = []
    for _ in range(512 * 1024):
        lines += splitter.feed(b"abcd")
    lines += splitter.feed(b"\r\nnext")
    lines += splitter.flush()
    assert [len(line) for line in lines] == [2 * 1024 * 1024, 4]


# -- a fake FILES_INCOMING marker in the output ----------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fake", "before\n[AGENTFM: FILES_INCOMING]\nafter\n"),
        ("fakelast", "looks done\n[AGENTFM: FILES_INCOMING]\n"),
    ],
)
async def test_fake_marker_is_plain_text_and_no_artifact_wait(
    fclient: Any,
    fault_mesh: EmbeddedMesh,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    expected: str,
) -> None:
    waits: list[str] = []

    def no_wait(task_id: str, **kwargs: Any) -> Any:
        waits.append(task_id)
        raise AssertionError("waited for artifacts after a fake marker")

    monkeypatch.setattr(fclient.tasks, "collect_artifacts", no_wait)
    result = await call(
        fclient.tasks.run, worker_id=fault_mesh.peer_id(name), prompt="x", artifact_timeout=600
    )
    assert result.text == expected
    assert not result.files_incoming
    assert result.artifacts == []
    assert waits == []
    chunks = await collect(fclient.tasks.stream(worker_id=fault_mesh.peer_id(name), prompt="x"))
    assert all(c.kind == "text" for c in chunks)


# -- the connection resets after the 200 ------------------------------------------------------


class ResetAfter200:
    """A raw-socket gateway: /api/execute answers 200, sends a few bytes, then sends RST."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.executes = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                body += conn.recv(65536)
            if head.startswith(b"GET /api/workers"):
                payload = b'{"success":true,"agents":[]}\n'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(payload), payload)
                )
                return
            with self._lock:
                self.executes += 1
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n8\r\npartial\n\r\n"
            )
            time.sleep(0.05)
            # SO_LINGER with a zero timeout turns close() into a TCP reset.
            linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def reset_server() -> Iterator[ResetAfter200]:
    server = ResetAfter200()
    yield server
    server.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_connection_reset_after_200(reset_server: ResetAfter200, flavour: str) -> None:
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    client: Any = cls(reset_server.url, api_key=None, retries=3)
    try:
        with pytest.raises(WorkerStreamError) as err:
            await call(client.tasks.run, worker_id=FAKE_PEER, prompt="x")
        assert err.value.task_started
        assert reset_server.executes == 1  # a started task is never re-sent
        # Without failover: each input is sent once and reported once.
        results = await call(
            client.tasks.scatter, ["a", "b", "c"], peer_ids=[FAKE_PEER], max_retries=0
        )
        assert [r.index for r in results] == [0, 1, 2]
        assert all(not r.ok and isinstance(r.exception, WorkerStreamError) for r in results)
        assert all(r.attempts == 1 for r in results)
        assert reset_server.executes == 4
        # With failover, scatter (not the transport) re-dispatches a broken task explicitly,
        # still one result per input, with every attempt accounted for.
        results = await call(client.tasks.scatter, ["d", "e"], peer_ids=[FAKE_PEER], max_retries=1)
        assert [r.index for r in results] == [0, 1]
        assert all(not r.ok and isinstance(r.exception, WorkerStreamError) for r in results)
        assert all(r.attempts == 2 for r in results)
        assert reset_server.executes == 8
    finally:
        await call(client.close)


# -- the gateway restarts during a scatter ---------------------------------------------------


async def _quick(prompt: str, ctx: AgentContext) -> str:
    await asyncio.sleep(0.02)
    return prompt + "\n"


def _restart_workers() -> list[WorkerConfig]:
    return [
        WorkerConfig(f"w{i}", "quick", CallableAgent(_quick), max_tasks=8, seed=f"restart:{i}")
        for i in range(2)
    ]


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_gateway_restart_during_scatter(flavour: str) -> None:
    first = EmbeddedMesh(_restart_workers(), api_keys=[], graceful_timeout=0.5).start()
    port, peers = first.port, [w.peer_id for w in first.workers]
    meshes = [first]
    trigger, restarted = threading.Event(), threading.Event()

    def restart() -> None:
        trigger.wait(60)
        first.stop()
        second = EmbeddedMesh(_restart_workers(), port=port, api_keys=[], graceful_timeout=0.5)
        meshes.append(second.start())
        restarted.set()

    side = threading.Thread(target=restart, daemon=True)
    side.start()
    seen_after: list[int] = []

    def progress(p: Any) -> None:
        if p.done >= 10:
            trigger.set()
        if restarted.is_set():
            seen_after.append(p.done)

    prompts = [f"p{i}" for i in range(60)]
    cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
    client: Any = cls(first.url, api_key=None, retries=4)
    try:
        results = await call(
            client.tasks.scatter,
            prompts,
            peer_ids=peers,
            max_concurrency=4,
            max_retries=4,
            on_progress=progress,
        )
    finally:
        await call(client.close)
        await asyncio.to_thread(side.join, 30)
        for mesh in meshes:
            mesh.stop()
    assert restarted.is_set()
    assert len(meshes) == 2
    assert [w.peer_id for w in meshes[1].workers] == peers  # same seeds, same identities
    assert [r.index for r in results] == list(range(60))
    failed = [r for r in results if not r.ok]
    # Only a task cut while running may fail, and then with a typed stream error.
    assert all(isinstance(r.exception, (WorkerStreamError, GatewayConnectionError)) for r in failed)
    assert len(failed) <= 4
    assert all(r.text == r.prompt + "\n" for r in results if r.ok)
    assert seen_after  # the scatter kept completing prompts on the restarted gateway


# -- 429 and 503 with Retry-After from the real gateway ----------------------------------------

KEY = "reliability-key-0123456789"


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_brute_force_reaches_429_with_retry_after_and_no_retry(flavour: str) -> None:
    worker = WorkerConfig("echo", "echo", CallableAgent(_quick), seed="r:auth")
    with EmbeddedMesh([worker], api_keys=[KEY]) as mesh:
        cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
        client: Any = cls(mesh.url, api_key="wrong-key-wrong-key-wrong", retries=5)
        try:
            for _ in range(30):
                with pytest.raises(AuthenticationError):
                    await call(client.workers.list)
            with pytest.raises(RateLimitError) as err:
                await call(client.workers.list)
            assert err.value.status == 429
            assert err.value.retry_after == 60.0
            with pytest.raises(RateLimitError):
                await call(client.tasks.run, worker_id=mesh.peer_id("echo"), prompt="x")
        finally:
            await call(client.close)
        # Each call hit the gateway exactly once: 401/429 are never retried.
        assert metric(mesh, 'agentfm_auth_attempts_total{outcome="invalid"}') == 30
        assert metric(mesh, 'agentfm_auth_attempts_total{outcome="rate_limited"}') == 2
        good: Any = cls(mesh.url, api_key=KEY)
        try:
            assert len(await call(good.workers.list)) == 1
        finally:
            await call(good.close)


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_async_in_flight_cap_is_typed_and_never_resent(flavour: str) -> None:
    gate = threading.Event()
    calls: list[str] = []

    def held(prompt: str, ctx: AgentContext) -> str:
        calls.append(prompt)
        gate.wait(30)
        return "done\n"

    worker = WorkerConfig("held", "held", CallableAgent(held), max_tasks=8, seed="r:held")
    with EmbeddedMesh([worker], api_keys=[], max_async_tasks=2) as mesh:
        cls = AgentFMClient if flavour == "sync" else AsyncAgentFMClient
        client: Any = cls(mesh.url, api_key=None, retries=5)
        peer = mesh.peer_id("held")
        try:
            acks = [
                await call(client.tasks.submit_async, worker_id=peer, prompt=f"p{i}")
                for i in range(2)
            ]
            assert all(a.status == "queued" for a in acks)
            with pytest.raises(AsyncCapacityError) as err:
                await call(client.tasks.submit_async, worker_id=peer, prompt="third")
            assert err.value.status == 503
            assert err.value.retry_after == 5.0
            assert err.value.code == "async_capacity_exhausted"
        finally:
            gate.set()
            await call(client.close)
        assert await asyncio.to_thread(wait_until, lambda: len(calls) == 2)
        assert sorted(calls) == ["p0", "p1"]


def test_errors_are_agentfm_errors() -> None:
    # The fault tests above rely on these being one tree.
    for cls in (IncompleteStreamError, WorkerStreamError, AsyncCapacityError, RateLimitError):
        assert issubclass(cls, AgentFMError)


@pytest.mark.timeout(30)
def test_marker_decoder_is_linear_on_blanks_after_a_marker_looking_line() -> None:
    from agentfm._streaming import MarkerDecoder

    decoder = MarkerDecoder()
    text: list[str] = []
    blob = b"[AGENTFM: NO_FILES]\n" + b" " * FLOOD_BYTES + b"\n\n[AGENTFM: FILES_INCOMING]\n"
    for start in range(0, len(blob), 1024):
        text += decoder.feed(blob[start : start + 1024])
    text += decoder.flush()
    assert decoder.files_incoming
    assert "".join(text) == "[AGENTFM: NO_FILES]\n" + " " * FLOOD_BYTES + "\n"
