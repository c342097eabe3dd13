"""Client CPU per task of scatter's lean path (`ExecutePool`) against a raw-socket client.

Run: ``.venv/bin/python tests/benchmarks/bench_execute_pool.py [--tasks 5000] [--profile]``

The lean path's default framing is httptools (llhttp) when installed; the h11-only figure
is printed too. A gateway stand-in runs in a subprocess: a uvloop server answering every
request with the Go gateway's reply to a short task (chunked text plus the marker). The same
number of tasks go through (a) `ExecutePool` with the request the SDK builds, and (b) a
raw-socket keep-alive client that does no checking at all (the floor). Both use the same
concurrency on uvloop. Figures (CPU ms per task and their ratio) are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import subprocess
import sys
import time

from _scatter_runner import RawReplies

SERVER = r"""
import asyncio, sys, uvloop
REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Date: Wed, 02 Dec 2026 03:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"1a\r\nhello world done prompt x\n\r\n15\r\n\n[AGENTFM: NO_FILES]\n\r\n0\r\n\r\n")
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, d):
        self.buf += d
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0: return
            head = self.buf[:end].lower()
            n = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            if len(self.buf) < end + 4 + n: return
            self.buf = self.buf[end + 4 + n:]
            self.t.write(REPLY)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
uvloop.run(main())
"""


async def lean(url: str, tasks: int, concurrency: int) -> None:
    from agentfm import AsyncAgentFMClient
    from agentfm._base_client import RequestSpec
    from agentfm._execute_pool import ExecutePool

    client = AsyncAgentFMClient(url, api_key="k" * 20)
    pool = ExecutePool(url, connect_timeout=10)
    todo = iter(range(tasks))

    async def slot() -> None:
        for n in todo:
            spec = RequestSpec(
                "POST",
                url + "/api/execute",
                json={"worker_id": "peer", "prompt": f"prompt {n}", "task_id": f"task_{n}"},
                headers=client._auth_headers,
            )
            text, _ = await pool.execute(
                spec, timeout=None, idle_timeout=client.idle_timeout, max_output_bytes=None
            )
            assert text == "hello world done prompt x\n"

    await asyncio.gather(*(slot() for _ in range(concurrency)))
    pool.close()
    await client.aclose()


async def raw(url: str, tasks: int, concurrency: int) -> None:
    import json

    host, port = url.removeprefix("http://").split(":")
    todo = iter(range(tasks))

    async def slot() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        replies = RawReplies(reader, writer)  # the raw floor of bench_scatter.py
        for n in todo:
            body = json.dumps({"worker_id": "peer", "prompt": f"prompt {n}"}).encode()
            _, text = await replies.ask(body)
            assert text.startswith("hello")
        writer.close()

    await asyncio.gather(*(slot() for _ in range(concurrency)))


def measure(fn: object, url: str, tasks: int, concurrency: int, profile: bool) -> float:
    import uvloop

    uvloop.run(fn(url, 200, concurrency))  # type: ignore[operator]  # warm-up, imports
    profiler = cProfile.Profile() if profile else None
    cpu0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    uvloop.run(fn(url, tasks, concurrency))  # type: ignore[operator]
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
    return (time.process_time() - cpu0) / tasks * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="cProfile the lean run")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        import agentfm._execute_pool as pool_module

        floor = measure(raw, url, args.tasks, args.concurrency, False)
        ours = measure(lean, url, args.tasks, args.concurrency, args.profile)
        pool_module.PARSER = "h11"
        pure = measure(lean, url, args.tasks, args.concurrency, False)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    print(f"raw socket client: {floor:.3f} ms CPU/task")
    print(f"ExecutePool:       {ours:.3f} ms CPU/task ({ours / floor:.2f}x the raw client)")
    print(f"  with h11 only:   {pure:.3f} ms CPU/task ({pure / floor:.2f}x the raw client)")


if __name__ == "__main__":
    main()
