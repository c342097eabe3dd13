"""Client CPU per task of the async scatter against a raw-socket client, in one run.

Run: ``PYTHONPATH=$PWD .venv/bin/python tests/benchmarks/bench_scatter_cpu.py
[--tasks 4000] [--latency 0.02] [--rounds 3] [--profile]``

A gateway stand-in runs in a subprocess: a uvloop server that answers each
``POST /api/execute`` after ``--latency`` seconds with the Go gateway's reply to a short task
(chunked text plus the ``NO_FILES`` marker), and ``GET /api/workers`` with a 404 (scatter
then runs without telemetry). In this process, on uvloop, with the same concurrency
(16 peers × 4 slots by default), the raw client (keep-alive sockets, no checks, no failover;
the same client as ``_scatter_runner._raw``), the raw parsed client (the same, with each
reply framed by the fast path's parser and its marker checked: ``_scatter_runner``'s
``ParsedReplies``) and ``AsyncAgentFMClient.tasks.scatter_iter`` run the same batch in
alternation, ``--rounds`` times each; each round's ``process_time`` is divided by the batch
size. The machine may be busy, so the CPU time (not wall) is compared, and the median of
the rounds is printed with both ratios. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from _scatter_runner import Outcome, ParsedReplies, RawReplies, raw_batch

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

SERVER = r"""
import asyncio, sys, uvloop
LATENCY = float(sys.argv[1])
def reply(body):
    prompt = body.split(b'"prompt": "', 1)[1].split(b'"', 1)[0]
    text = b"done " + prompt.split(b" ", 1)[1] + b"\n"
    marker = b"\n[AGENTFM: NO_FILES]\n"
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Date: Wed, 02 Dec 2026 03:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n" % (len(text), text) + b"%x\r\n%s\r\n" % (len(marker), marker)
            + b"0\r\n\r\n")
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 18\r\n\r\n404 page not found"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, d):
        self.buf += d
        loop = asyncio.get_running_loop()
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0: return
            head = self.buf[:end].lower()
            n = 0
            if b"content-length:" in head:
                n = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(self.buf) < end + 4 + n: return
            body = self.buf[end + 4:end + 4 + n]
            self.buf = self.buf[end + 4 + n:]
            if head.startswith(b"get"):
                self.t.write(NOT_FOUND)
            else:
                loop.call_later(LATENCY, self.send, reply(body))
    def send(self, data):
        if not self.t.is_closing(): self.t.write(data)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0, backlog=1024)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
uvloop.run(main())
"""

Spec = dict[str, Any]


def prompt_of(index: int) -> str:
    return f"summarise item-{index}"


def right(outcomes: list[Outcome]) -> int:
    """How many outcomes are a success whose text is the expected answer."""
    return sum(ok and text.strip() == f"done item-{index}" for index, ok, text, _ in outcomes)


async def raw(spec: Spec) -> int:
    """The floor, ``_scatter_runner._raw``'s client: one keep-alive socket per slot, no checks."""
    return right(await raw_batch(spec, [prompt_of(i) for i in range(spec["items"])], RawReplies))


async def raw_parsed(spec: Spec) -> int:
    """The raw client, each reply parsed by the fast path's parser (``_scatter_runner``'s)."""
    prompts = [prompt_of(i) for i in range(spec["items"])]
    return right(await raw_batch(spec, prompts, ParsedReplies))


async def agentfm_async(spec: Spec) -> int:
    """``AsyncAgentFMClient.tasks.scatter_iter``, as ``_scatter_runner.run_agentfm_async``."""
    from agentfm import AsyncAgentFMClient

    ok = 0
    async with AsyncAgentFMClient(spec["url"], api_key=None) as client:
        async for r in client.tasks.scatter_iter(
            [prompt_of(i) for i in range(spec["items"])],
            peer_ids=spec["peers"],
            max_concurrency=spec["concurrency"],
        ):
            ok += r.ok and r.text.strip() == f"done item-{r.index}"
    return ok


def cpu_per_task(
    run: Callable[[Spec], Coroutine[Any, Any, int]],
    spec: Spec,
    profiler: cProfile.Profile | None = None,
) -> float:
    import uvloop

    cpu0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    ok = uvloop.run(run(spec))
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu0
    if ok != spec["items"]:
        raise SystemExit(f"{run.__name__}: {ok} of {spec['items']} right")
    return cpu / spec["items"] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the agentfm rounds")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        spec: Spec = {
            "url": f"http://127.0.0.1:{server.stdout.readline().strip()}",
            "peers": [f"12D3KooWpeer{n:02d}" for n in range(args.workers)],
            "concurrency": args.workers * args.slots,
            "items": args.tasks,
        }
        warm = {**spec, "items": 200}
        cpu_per_task(raw, warm)  # imports, first connections
        cpu_per_task(raw_parsed, warm)
        cpu_per_task(agentfm_async, warm)
        profiler = cProfile.Profile() if args.profile else None
        floors, parsed, ours = [], [], []
        for _ in range(args.rounds):
            floors.append(cpu_per_task(raw, spec))
            parsed.append(cpu_per_task(raw_parsed, spec))
            ours.append(cpu_per_task(agentfm_async, spec, profiler))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    floor, least, mine = map(statistics.median, (floors, parsed, ours))
    print(f"raw socket client:   {floor:.4f} ms CPU/task  rounds {[round(f, 4) for f in floors]}")
    print(f"raw parsed client:   {least:.4f} ms CPU/task  rounds {[round(p, 4) for p in parsed]}")
    print(f"agentfm async:       {mine:.4f} ms CPU/task  rounds {[round(o, 4) for o in ours]}")
    print(f"ratio vs raw floor:  {mine / floor:.2f}x")
    print(f"ratio vs raw parsed: {mine / least:.2f}x")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
