"""The scatter benchmark's mesh: an embedded gateway with worker groups of controlled latency.

Run as a child process by ``bench_scatter.py`` (so the mesh's CPU is its own, readable from
``/proc/<pid>/stat``). It prints one JSON line with the URL and each group's peer ids, then
serves until its stdin closes.

Every agent answers ``done <id>`` where ``<id>`` is the ``item-N`` token of its prompt, so
a client's result can be checked against the prompt it was given (the OpenAI routes flatten
chat messages, so the token is searched for rather than the prompt echoed whole).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

ITEM = re.compile(r"item-\d+")
MAX_TASKS = 4


@dataclass(frozen=True)
class Group:
    """Workers sharing one engine name (the ``model`` the OpenAI routes match on)."""

    engine: str
    workers: int
    latency: float
    slow_workers: int = 0
    slow_factor: float = 1.0
    broken_workers: int = 0
    straggler_rate: float = 0.0
    straggler_factor: float = 1.0
    max_tasks: int = MAX_TASKS


GROUPS = (
    Group("w1", 16, 0.020),
    Group("w1b", 16, 0.200),
    Group("w2", 16, 0.200, slow_workers=4, slow_factor=5.0),
    Group("w3ok", 8, 0.200),
    Group("w3", 8, 0.200, broken_workers=1),
    Group("strag", 16, 0.200, straggler_rate=0.01, straggler_factor=20.0),
    Group("scale", 16, 0.0),
)


def item_of(prompt: str) -> str:
    """The ``item-N`` token of a prompt (``?`` when absent)."""
    found = ITEM.search(prompt)
    return found.group(0) if found else "?"


def healthy(latency: float) -> Callable[[str, object], Awaitable[str]]:
    """An agent that sleeps ``latency`` seconds, then answers."""

    async def agent(prompt: str, ctx: object) -> str:
        if latency:
            await asyncio.sleep(latency)
        return f"done {item_of(prompt)}\n"

    return agent


def straggling(latency: float, rate: float, factor: float, seed: int) -> Callable[..., object]:
    """An agent whose attempts take ``factor`` times longer with probability ``rate``."""
    rng = random.Random(seed)

    async def agent(prompt: str, ctx: object) -> str:
        slow = rng.random() < rate
        await asyncio.sleep(latency * (factor if slow else 1.0))
        return f"done {item_of(prompt)}\n"

    return agent


def broken(latency: float) -> Callable[[str, object], AsyncIterator[str]]:
    """An agent that writes some output, then has its stream reset (no terminal marker)."""
    from agentfm.mesh import BreakStream

    async def agent(prompt: str, ctx: object) -> AsyncIterator[str]:
        yield f"working on {item_of(prompt)}\n"
        await asyncio.sleep(latency / 2)
        raise BreakStream

    return agent


def serve() -> None:
    """Serve every group until stdin closes."""
    from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig

    configs: list[WorkerConfig] = []
    names: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for group in GROUPS:
        for n in range(group.workers):
            name = f"{group.engine}-{n:02d}"
            kind = "healthy"
            fn: Callable[..., object]
            if n < group.broken_workers:
                fn, kind = broken(group.latency), "broken"
            elif n < group.slow_workers:
                fn, kind = healthy(group.latency * group.slow_factor), "slow"
            elif group.straggler_rate:
                fn = straggling(group.latency, group.straggler_rate, group.straggler_factor, n)
            else:
                fn = healthy(group.latency)
            configs.append(
                WorkerConfig(
                    name, group.engine, CallableAgent(fn), max_tasks=group.max_tasks, seed=name
                )
            )
            names.setdefault(group.engine, []).append(name)
            kinds[name] = kind
    with EmbeddedMesh(configs, api_keys=[]) as mesh:
        groups = {
            engine: [
                {"peer_id": mesh.peer_id(name), "name": name, "kind": kinds[name]}
                for name in members
            ]
            for engine, members in names.items()
        }
        print(json.dumps({"url": mesh.url, "groups": groups}), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    serve()
