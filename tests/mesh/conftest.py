"""Fixtures for the embedded gateway's wire tests: small meshes with in-process agents."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from agentfm.mesh import AgentContext, BreakStream, CallableAgent, EmbeddedMesh, WorkerConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


async def _echo(prompt: str, ctx: AgentContext) -> str:
    return prompt + "\n"


async def _lines(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    for word in prompt.split():
        yield word + "\n"


def _files(prompt: str, ctx: AgentContext) -> str:
    out = ctx.output_dir
    (out / "a.txt").write_text("alpha")
    (out / "nested" / "deeper").mkdir(parents=True)
    (out / "nested" / "deeper" / "b.txt").write_text("beta")
    (out / "empty_dir").mkdir()
    for i in range(30):
        (out / f"many_{i:02d}.txt").write_text(str(i) * 10)
    (out / "link.txt").symlink_to(out / "a.txt")
    return "files written\n"


async def _crash(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    yield "partial output\n"
    raise RuntimeError("agent blew up")


async def _reset(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    yield "before reset\n"
    raise BreakStream


async def _slow(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
    yield "started\n"
    await asyncio.sleep(float(prompt))
    yield "finished\n"


def wire_workers() -> list[WorkerConfig]:
    """One worker per behaviour the wire tests need, with fixed identities."""
    return [
        WorkerConfig("echo", "echo-engine", CallableAgent(_echo), max_tasks=4, seed="t:echo"),
        WorkerConfig("lines", "llama3.2", CallableAgent(_lines), max_tasks=2, seed="t:lines"),
        WorkerConfig("files", "files", CallableAgent(_files), seed="t:files"),
        WorkerConfig("crash", "crash", CallableAgent(_crash), seed="t:crash"),
        WorkerConfig("reset", "reset", CallableAgent(_reset), seed="t:reset"),
        WorkerConfig("slow", "slow", CallableAgent(_slow), max_tasks=1, seed="t:slow"),
    ]


@pytest.fixture(scope="module")
def mesh() -> Iterator[EmbeddedMesh]:
    """A mesh of in-process agents, no auth, shared by a test module."""
    with EmbeddedMesh(wire_workers(), api_keys=[]) as m:
        yield m


@pytest.fixture
def http(mesh: EmbeddedMesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.url, timeout=30) as client:
        yield client


def execute(client: httpx.Client, worker_id: str, prompt: str, **extra: Any) -> httpx.Response:
    return client.post("/api/execute", json={"worker_id": worker_id, "prompt": prompt, **extra})
