"""SDK overhead benchmark: prints ratios measured in one run against one local gateway.

Run: ``.venv/bin/python tests/benchmarks/bench_sdk.py [--quick]``

The gateway is the embedded mesh (in a child process, so the client's CPU time is its
own) with trivial in-process Python workers. Measured:

* ``tasks.run`` latency against a bare httpx POST-and-read of the same route;
* ``tasks.stream`` time to first chunk against bare httpx streaming;
* marker-decoder throughput on a 50 MB body;
* client CPU per task with 64 tasks in flight: the SDK's sharded pool against a bare
  ``httpx.AsyncClient`` with one 64-connection pool.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agentfm import AgentFMClient, AsyncAgentFMClient
from agentfm._streaming import MarkerDecoder
from agentfm._transport import AsyncShardedTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

CONCURRENCY = 64


def _serve(conn: Any) -> None:
    from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig

    def reply(prompt: str, ctx: AgentContext) -> str:
        return "ok\n"

    async def two_parts(prompt: str, ctx: AgentContext) -> AsyncIterator[str]:
        yield "first\n"
        await asyncio.sleep(0.02)
        yield "second\n"

    workers = [
        WorkerConfig("fast", "bench", CallableAgent(reply, threaded=False), max_tasks=256),
        WorkerConfig("twopart", "bench2", CallableAgent(two_parts), max_tasks=256),
    ]
    with EmbeddedMesh(workers) as mesh:
        conn.send((mesh.url, mesh.peer_id("fast"), mesh.peer_id("twopart")))
        conn.recv()


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bench_run(url: str, peer: str, rounds: int) -> tuple[float, float]:
    body = {"worker_id": peer, "prompt": "hi"}
    sdk_times: list[float] = []
    bare_times: list[float] = []
    with AgentFMClient(url, api_key=None) as client, httpx.Client(base_url=url) as bare:
        for _ in range(20):  # warm both pools
            client.tasks.run(worker_id=peer, prompt="hi")
            bare.post("/api/execute", json=body).read()
        for round_ in range(rounds):
            # Alternate who goes first so neither always meets a just-idle server.
            for which in (0, 1) if round_ % 2 else (1, 0):
                start = time.perf_counter()
                if which:
                    bare.post("/api/execute", json=body).read()
                    bare_times.append(time.perf_counter() - start)
                else:
                    client.tasks.run(worker_id=peer, prompt="hi")
                    sdk_times.append(time.perf_counter() - start)
    return _median_ms(sdk_times), _median_ms(bare_times)


def bench_first_chunk(url: str, peer: str, rounds: int) -> tuple[float, float]:
    body = {"worker_id": peer, "prompt": "hi"}
    sdk_times: list[float] = []
    bare_times: list[float] = []
    with AgentFMClient(url, api_key=None) as client, httpx.Client(base_url=url) as bare:
        for round_ in range(rounds + 10):
            for which in (0, 1) if round_ % 2 else (1, 0):
                start = time.perf_counter()
                if which:
                    with bare.stream("POST", "/api/execute", json=body) as response:
                        pieces = response.iter_bytes()
                        next(pieces)
                        bare_times.append(time.perf_counter() - start)
                        for _ in pieces:
                            pass
                else:
                    with client.tasks.stream(worker_id=peer, prompt="hi") as stream:
                        next(stream)
                        sdk_times.append(time.perf_counter() - start)
                        for _ in stream:
                            pass
    return _median_ms(sdk_times[10:]), _median_ms(bare_times[10:])


def bench_decoder(megabytes: int) -> float:
    line = b"the quick brown fox jumps over the lazy dog, 0123456789 \xc3\xa9\xe2\x82\xac\n"
    block = line * (65536 // len(line))
    count = megabytes * 1024 * 1024 // len(block)
    decoder = MarkerDecoder()
    start = time.perf_counter()
    for _ in range(count):
        decoder.feed(block)
    decoder.feed(b"\n[AGENTFM: NO_FILES]\n")
    decoder.flush()
    elapsed = time.perf_counter() - start
    assert decoder.marker is not None
    return len(block) * count / elapsed / 1e6


async def _cpu_per_task(run_one: Callable[[], Any], total: int) -> tuple[float, float]:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    peak = 0
    now = 0

    async def one() -> None:
        nonlocal peak, now
        async with semaphore:
            now += 1
            peak = max(peak, now)
            try:
                await run_one()
            finally:
                now -= 1

    await asyncio.gather(*(one() for _ in range(CONCURRENCY * 2)))
    cpu = time.process_time()
    wall = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return (time.process_time() - cpu) / total * 1000, total / (time.perf_counter() - wall)


async def bench_concurrency(url: str, peer: str, total: int) -> dict[str, tuple[float, float]]:
    body = {"worker_id": peer, "prompt": "hi"}
    results: dict[str, tuple[float, float]] = {}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits) as bare:

        async def bare_one() -> None:
            (await bare.post("/api/execute", json=body)).read()

        results["bare httpx.AsyncClient (one 64-conn pool)"] = await _cpu_per_task(bare_one, total)
    async with httpx.AsyncClient(base_url=url, transport=AsyncShardedTransport()) as sharded:

        async def sharded_one() -> None:
            (await sharded.post("/api/execute", json=body)).read()

        results["bare httpx over the SDK's sharded pool"] = await _cpu_per_task(sharded_one, total)
    async with AsyncAgentFMClient(url, api_key=None) as client:

        async def sdk_one() -> None:
            await client.tasks.run(worker_id=peer, prompt="hi")

        results["AsyncAgentFMClient.tasks.run (sharded pool)"] = await _cpu_per_task(sdk_one, total)
    return results


def _ratio(name: str, sdk: float, bare: float, target: float) -> None:
    print(
        f"{name:22s} sdk {sdk:7.3f} ms   bare httpx {bare:7.3f} ms   "
        f"ratio {sdk / bare:.3f}x (target <= {target:.2f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    args = parser.parse_args()
    rounds = 60 if args.quick else 400
    total = 400 if args.quick else 3000
    megabytes = 5 if args.quick else 50

    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
    server.start()
    url, fast, twopart = parent.recv()
    try:
        sdk, bare = bench_run(url, fast, rounds)
        _ratio("tasks.run latency", sdk, bare, 1.15)
        sdk, bare = bench_first_chunk(url, twopart, rounds // 2)
        _ratio("stream first chunk", sdk, bare, 1.10)
        rate = bench_decoder(megabytes)
        print(f"{'marker decoder':22s} {rate:7.1f} MB/s on a {megabytes} MB body")
        print(f"client CPU per task, {CONCURRENCY} in flight, {total} tasks:")
        for name, (cpu_ms, rate) in asyncio.run(bench_concurrency(url, fast, total)).items():
            print(f"  {name:46s} {cpu_ms:6.3f} ms CPU/task  {rate:7.0f} tasks/s")
    finally:
        parent.send("stop")
        server.join(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
