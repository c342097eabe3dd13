"""Fixtures for the reliability suite: a mesh of misbehaving workers, process helpers."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agentfm.mesh import (
    AgentContext,
    BreakStream,
    CallableAgent,
    CommandAgent,
    EmbeddedMesh,
    WorkerConfig,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

FLOOD_BYTES = 8 * 1024 * 1024

# One stdlib-only agent script; the mode is argv[1], the prompt is always the last argument.
AGENT_SCRIPT = r"""
import os, signal, subprocess, sys, time
mode, prompt = sys.argv[1], sys.argv[-1]
out = sys.stdout.buffer

def put(data):
    out.write(data)
    out.flush()

if mode == "hang":
    # No output at all; a grandchild in the same process group sleeps too.
    child = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(120)"])
    with open(prompt + ".tmp", "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}")
    os.replace(prompt + ".tmp", prompt)
    time.sleep(120)
elif mode == "suicide":
    put(b"partial output\n")
    put(b"half a li")
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "flood":
    euro, smile = "\u20ac".encode(), "\U0001F600".encode()
    put(euro[:1])
    time.sleep(0.01)
    put(euro[1:2])
    put(euro[2:])
    block = b"a" * 65536
    for _ in range(FLOOD // len(block)):
        out.write(block)
    out.flush()
    put(smile[:3])
    time.sleep(0.01)
    put(smile[3:] + b"\n")
elif mode == "fake_marker":
    put(b"before\n[AGENTFM: FILES_INCOMING]\nafter\n")
elif mode == "fake_marker_last":
    put(b"looks done\n[AGENTFM: FILES_INCOMING]\n")
elif mode == "sleep":
    folder, seconds = prompt.split("|")
    with open(os.path.join(folder, f"{os.getpid()}.pid"), "w") as fh:
        fh.write(str(os.getpid()))
    put(b"started\n")
    time.sleep(float(seconds))
    put(b"finished\n")
""".replace("FLOOD", str(FLOOD_BYTES))


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(0.02)
    return True


def write_agent(folder: Path) -> Path:
    script = folder / "agent.py"
    script.write_text(AGENT_SCRIPT)
    return script


def command(script: Path, mode: str, **kw: Any) -> CommandAgent:
    return CommandAgent([sys.executable, "-S", str(script), mode], **kw)


async def _vanish(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    # What a worker crash looks like through the real gateway: the libp2p stream resets
    # after some output, and the HTTP body ends cleanly with no terminal marker.
    yield "partial answer\n"
    yield "cut in the mid"
    raise BreakStream


async def _echo(prompt: str, ctx: AgentContext) -> str:
    return prompt + "\n"


def fault_workers(script: Path) -> list[WorkerConfig]:
    return [
        WorkerConfig("vanish", "vanish", CallableAgent(_vanish), max_tasks=8, seed="r:vanish"),
        WorkerConfig("echo", "echo", CallableAgent(_echo), max_tasks=8, seed="r:echo"),
        WorkerConfig("suicide", "suicide", command(script, "suicide"), max_tasks=4, seed="r:s"),
        WorkerConfig("hang", "hang", command(script, "hang"), max_tasks=4, seed="r:hang"),
        WorkerConfig("flood", "flood", command(script, "flood"), max_tasks=2, seed="r:flood"),
        WorkerConfig("fake", "fake", command(script, "fake_marker"), max_tasks=4, seed="r:fake"),
        WorkerConfig(
            "fakelast", "fakelast", command(script, "fake_marker_last"), max_tasks=4, seed="r:fl"
        ),
    ]


@pytest.fixture(scope="module")
def agent_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_agent(tmp_path_factory.mktemp("agent"))


@pytest.fixture(scope="module")
def fault_mesh(agent_script: Path) -> Iterator[EmbeddedMesh]:
    """Workers that crash, hang, flood and lie; no auth."""
    with EmbeddedMesh(fault_workers(agent_script), api_keys=[], graceful_timeout=1.0) as mesh:
        yield mesh


@pytest.fixture(params=["sync", "async"])
async def fclient(
    request: pytest.FixtureRequest, fault_mesh: EmbeddedMesh, tmp_path: Path
) -> AsyncIterator[Any]:
    """The sync and the async client on the fault mesh."""
    from agentfm import AgentFMClient, AsyncAgentFMClient

    if request.param == "sync":
        with AgentFMClient(fault_mesh.url, artifacts_dir=tmp_path / "a", api_key=None) as c:
            yield c
    else:
        async with AsyncAgentFMClient(
            fault_mesh.url, artifacts_dir=tmp_path / "a", api_key=None
        ) as c:
            yield c
