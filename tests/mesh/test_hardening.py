"""The embedded mesh under hostile agents and hostile clients (issue #15 items 10-12).

Real parts only: an `EmbeddedMesh` on loopback, the SDK client, raw sockets for the
half-sent heads, and a mesh in a subprocess for the SIGKILL case.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from agentfm import AgentExitError, AgentFMClient, AsyncAgentFMClient
from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

# More than the default `asyncio.to_thread` pool holds on a 2-core machine (cpu + 4 = 6).
HUNG = 8


def _hanging(gate: threading.Event, started: threading.Semaphore) -> Callable[..., str]:
    def agent(prompt: str, ctx: AgentContext) -> str:
        started.release()
        gate.wait(30)  # a sync agent that hangs (bounded, so a failing test still ends)
        return "late\n"

    return agent


def _quick(prompt: str, ctx: AgentContext) -> str:
    return f"ok {prompt}\n"


def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.mark.timeout(60)
async def test_hung_sync_agents_do_not_starve_other_workers() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    workers = [
        WorkerConfig("hung", "sync", CallableAgent(_hanging(gate, started)), max_tasks=HUNG),
        WorkerConfig("quick", "sync", CallableAgent(_quick), max_tasks=4),
    ]
    with EmbeddedMesh(workers) as mesh:
        async with AsyncAgentFMClient(mesh.url, api_key=None, retries=0) as client:
            hung = [
                asyncio.ensure_future(
                    client.tasks.run(worker_id=mesh.peer_id("hung"), prompt=f"h{n}", timeout=40)
                )
                for n in range(HUNG)
            ]
            try:
                for _ in range(HUNG):
                    assert await asyncio.to_thread(started.acquire, True, 20)
                # Every hung agent holds a thread; the other worker must still answer.
                result = await client.tasks.run(
                    worker_id=mesh.peer_id("quick"), prompt="x", timeout=10
                )
                assert result.text == "ok x\n"
            finally:
                gate.set()
                for task in hung:
                    task.cancel()
                await asyncio.gather(*hung, return_exceptions=True)


@pytest.mark.timeout(60)
def test_callable_agent_timeout_and_the_slot_stays_busy_until_it_stops() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    agent = CallableAgent(_hanging(gate, started), timeout=0.3)
    with (
        EmbeddedMesh([WorkerConfig("slow", "sync", agent, max_tasks=1)]) as mesh,
        AgentFMClient(mesh.url, api_key=None, retries=0) as client,
    ):
        peer = mesh.peer_id("slow")
        try:
            # The worker reports the timeout as a killed agent, which is a typed failure.
            with pytest.raises(AgentExitError) as killed:
                client.tasks.run(worker_id=peer, prompt="p", timeout=20)
            assert killed.value.killed
            # The function is still running on its thread: the slot is not free.
            [profile] = client.workers.list()
            assert profile.current_tasks == 1
            second = client.tasks.stream(worker_id=peer, prompt="again", timeout=20)
            with pytest.raises(Exception, match="max capacity"), second:
                for _ in second:
                    pass
        finally:
            gate.set()
        assert _until(lambda: client.workers.list()[0].current_tasks == 0)
        assert started.acquire(timeout=1)
        gate.clear()
        # Freed for real: the next task runs (and times out the same way).
        with pytest.raises(AgentExitError, match="signal: killed"):
            client.tasks.run(worker_id=peer, prompt="p", timeout=20)
        gate.set()


# -- request heads (item 11) -------------------------------------------------------------


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _health(url: str) -> int:
    with httpx.Client(timeout=5) as http:
        return http.get(url + "/health").status_code


@pytest.mark.timeout(60)
def test_a_head_over_1_mb_gets_go_s_431_and_health_keeps_answering() -> None:
    with EmbeddedMesh([WorkerConfig("quick", "sync", CallableAgent(_quick))]) as mesh:
        sock = _connect(mesh.url)
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
            sent = 0
            block = b"a" * 65536
            with contextlib.suppress(OSError):  # the server may close while we still send
                while sent < 4 * 1024 * 1024:
                    sock.sendall(block)
                    sent += len(block)
                    if sent % (1024 * 1024) == 0:
                        assert _health(mesh.url) == 200
            reply = _read_all(sock)
        finally:
            sock.close()
        assert reply.startswith(b"HTTP/1.1 431 ")
        assert _health(mesh.url) == 200


@pytest.mark.timeout(60)
def test_half_sent_heads_are_closed_after_the_head_timeout() -> None:
    workers = [WorkerConfig("quick", "sync", CallableAgent(_quick))]
    with EmbeddedMesh(workers, head_timeout=0.5) as mesh:
        idle = [_connect(mesh.url) for _ in range(200)]
        try:
            for sock in idle:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
            assert _health(mesh.url) == 200  # answered while they wait
            started = time.monotonic()
            for sock in idle:
                assert _read_all(sock) == b""  # closed by the server, no answer (as Go)
            assert time.monotonic() - started < 30
            # A complete request is not cut by the head timer.
            sock = _connect(mesh.url)
            with sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        finally:
            for sock in idle:
                sock.close()


def test_the_soft_open_files_limit_is_raised_like_go() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        with EmbeddedMesh([WorkerConfig("quick", "sync", CallableAgent(_quick))]):
            now, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert now == hard


# -- agents die with the mesh (item 12) --------------------------------------------------

MESH_SCRIPT = r"""
import sys, time
from agentfm.mesh import CommandAgent, EmbeddedMesh, WorkerConfig
folder = sys.argv[1]
agent = CommandAgent([sys.executable, "-S", "-c", '''
import os, sys, time
open(os.path.join(sys.argv[1], "agent.pid"), "w").write(str(os.getpid()))
print("started", flush=True)
time.sleep(120)
''', folder])
mesh = EmbeddedMesh([WorkerConfig("sleepy", "cmd", agent, max_tasks=2)]).start()
print(mesh.url, mesh.peer_id("sleepy"), flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


@pytest.mark.timeout(60)
def test_subprocess_agents_die_when_the_mesh_is_sigkilled(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    mesh = subprocess.Popen(
        [sys.executable, "-c", MESH_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    agent_pid = 0
    try:
        assert mesh.stdout is not None
        url, peer = mesh.stdout.readline().split()

        def run() -> None:
            with contextlib.suppress(Exception), AgentFMClient(url, api_key=None) as client:
                client.tasks.run(worker_id=peer, prompt="x", timeout=30)

        caller = threading.Thread(target=run, daemon=True)
        caller.start()
        pid_file = tmp_path / "agent.pid"
        assert _until(lambda: pid_file.exists() and pid_file.read_text() != "")
        agent_pid = int(pid_file.read_text())
        assert _alive(agent_pid)
        mesh.send_signal(signal.SIGKILL)
        mesh.wait(10)
        assert _until(lambda: not _alive(agent_pid), 10)
        caller.join(10)
    finally:
        if mesh.poll() is None:
            mesh.kill()
            mesh.wait(10)
        if agent_pid and _alive(agent_pid):
            os.kill(agent_pid, signal.SIGKILL)
