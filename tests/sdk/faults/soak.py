"""Bounded soak: many tasks through an embedded mesh on loopback, with resource figures.

Not part of the test run. Usage::

    .venv/bin/python -m tests.sdk.faults.soak --tasks 10000 --concurrency 64

Prints tasks/s, the error count, and open file descriptors and RSS at start and end
(after a warm-up round, so pools and caches count as the baseline). Exits non-zero on any
error or on fd growth.

Each scatter closes its connections when it returns, but the sockets go away a moment later
(asyncio closes a transport on the loop's next turn, and the in-process server closes its
end when it reads the EOF). Every measurement therefore first waits for the sockets between
this process and the mesh to be gone, except the client's one pooled keep-alive connection
(scatter reads ``GET /api/workers`` through the regular HTTP pool; both of its ends are in
this process: `POOLED_SOCKETS`). `SoakReport.mesh_sockets` is the most that were open when a
wait ended, so a leaked connection shows there rather than as noise in the fd count.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from agentfm import AgentFMClient, AsyncAgentFMClient
from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig


async def _echo(prompt: str, ctx: AgentContext) -> str:
    return prompt + "\n"


def soak_workers(count: int = 4, max_tasks: int = 64) -> list[WorkerConfig]:
    """Echo workers with enough capacity that the client's concurrency is the limit."""
    return [
        WorkerConfig(f"soak{i}", "soak", CallableAgent(_echo), max_tasks=max_tasks, seed=f"s:{i}")
        for i in range(count)
    ]


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


# One pooled keep-alive connection (client end + in-process server end) may stay open between
# scatters; the fast path's task connections all close.
POOLED_SOCKETS = 2


def _tcp_inodes(port: int) -> set[str]:
    """Socket inodes of TCP connections (not listeners) with ``port`` at either end."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "0A":  # LISTEN: the mesh's own server socket, not a connection
                continue
            ports = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
            if port in ports:
                inodes.add(inode)
    return inodes


def mesh_sockets(port: int) -> int:
    """Descriptors of this process that are TCP connections to or from ``port``.

    Both ends count, since the embedded mesh serves from this same process.
    """
    inodes = _tcp_inodes(port)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed between the listing and the read
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


def settle_mesh_sockets(port: int, allowed: int = 0, timeout: float = 15.0) -> int:
    """Wait until at most ``allowed`` sockets to ``port`` are open; return the count then."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        left = mesh_sockets(port)
        if left <= allowed or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def rss_mib() -> float:
    """Resident set size of this process, in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class SoakReport:
    tasks: int
    concurrency: int
    seconds: float
    errors: int
    wrong: int
    fds_start: int
    fds_end: int
    mesh_sockets: int
    rss_start: float
    rss_end: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        return [
            f"tasks        {self.tasks} at concurrency {self.concurrency}",
            f"throughput   {self.rate:.0f} tasks/s ({self.seconds:.1f} s)",
            f"errors       {self.errors} (wrong text: {self.wrong})",
            f"open fds     {self.fds_start} -> {self.fds_end}"
            f" (connections left to the mesh: {self.mesh_sockets})",
            f"RSS          {self.rss_start:.1f} MiB -> {self.rss_end:.1f} MiB",
        ]


def _check(results: list[Any]) -> tuple[int, int]:
    errors = sum(1 for r in results if not r.ok)
    wrong = sum(1 for r in results if r.ok and r.text != r.prompt + "\n")
    return errors, wrong


async def _async_round(client: AsyncAgentFMClient, peers: list[str], n: int, c: int) -> list[Any]:
    prompts = [f"soak {i}" for i in range(n)]
    return await client.tasks.scatter(prompts, peer_ids=peers, max_concurrency=c, max_retries=0)


def run_soak(
    mesh: EmbeddedMesh, tasks: int, concurrency: int, flavour: str = "async", rounds: int = 10
) -> SoakReport:
    """Run ``tasks`` tasks in ``rounds`` scatters on a fresh client; measure around them."""
    peers = [w.peer_id for w in mesh.workers]
    per_round = max(1, tasks // rounds)
    warm = min(per_round, 2 * concurrency)
    port = mesh.port
    left: list[int] = []

    def measure() -> tuple[int, float]:
        # The finished scatter's sockets close a moment after it returns: wait for that, so
        # the count is of what stays open, not of what is still being torn down.
        left.append(settle_mesh_sockets(port, allowed=POOLED_SOCKETS))
        return open_fds(), rss_mib()

    if flavour == "sync":
        with AgentFMClient(mesh.url, api_key=None) as client:
            client.tasks.scatter(["warm"] * warm, peer_ids=peers, max_concurrency=concurrency)
            fds0, rss0 = measure()
            start = time.perf_counter()
            results: list[Any] = []
            for _ in range(rounds):
                results += client.tasks.scatter(
                    [f"soak {i}" for i in range(per_round)],
                    peer_ids=peers,
                    max_concurrency=concurrency,
                    max_retries=0,
                )
            seconds = time.perf_counter() - start
            fds1, rss1 = measure()
    else:

        async def main() -> tuple[list[Any], float, int, float, int, float]:
            async with AsyncAgentFMClient(mesh.url, api_key=None) as client:
                await _async_round(client, peers, warm, concurrency)
                fds0, rss0 = measure()
                start = time.perf_counter()
                out: list[Any] = []
                for _ in range(rounds):
                    out += await _async_round(client, peers, per_round, concurrency)
                seconds = time.perf_counter() - start
                fds1, rss1 = measure()
            return out, seconds, fds0, rss0, fds1, rss1

        results, seconds, fds0, rss0, fds1, rss1 = asyncio.run(main())
    errors, wrong = _check(results)
    return SoakReport(
        tasks=len(results),
        concurrency=concurrency,
        seconds=seconds,
        errors=errors,
        wrong=wrong,
        fds_start=fds0,
        fds_end=fds1,
        rss_start=rss0,
        rss_end=rss1,
        mesh_sockets=max(left),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--flavour", choices=("async", "sync"), default="async")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    with EmbeddedMesh(soak_workers(), api_keys=[]) as mesh:
        report = run_soak(mesh, args.tasks, args.concurrency, args.flavour, args.rounds)
    print(f"soak ({args.flavour} client, embedded mesh on loopback)")
    for line in report.lines():
        print("  " + line)
    # Every measurement waited for the scatters' connections to close: anything left is a leak.
    leaked = report.mesh_sockets > POOLED_SOCKETS or report.fds_end - report.fds_start > 2
    return 1 if report.errors or report.wrong or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
