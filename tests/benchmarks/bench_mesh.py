"""Benchmark the embedded gateway: throughput, gateway CPU per task, added latency.

Run: ``.venv/bin/python tests/benchmarks/bench_mesh.py [--tasks N] [--concurrency C]``

The mesh runs in a separate process (so its CPU time is its own, read from /proc) with one
trivial in-process agent. A minimal keep-alive HTTP/1.1 client drives it, so the client
costs little of the shared CPUs. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def trivial_agent(prompt: str, ctx: object) -> str:
    """The agent under test: answer at once."""
    return "ok\n"


def serve() -> None:
    """Child process: serve a one-worker mesh until stdin closes."""
    from agentfm.mesh import CallableAgent, EmbeddedMesh, WorkerConfig

    worker = WorkerConfig("bench", "bench", CallableAgent(trivial_agent), max_tasks=1024)
    with EmbeddedMesh([worker], api_keys=[]) as mesh:
        print(json.dumps({"url": mesh.url, "peer_id": mesh.peer_id("bench")}), flush=True)
        sys.stdin.read()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Conn:
    """One keep-alive HTTP/1.1 connection that sends a fixed request and reads the reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self, raw: bytes) -> bytes:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    return bytes(body)
                body += await self.reader.readexactly(size + 2)
                del body[-2:]
        length = int(lower.split(b"content-length: ")[1].split(b"\r\n")[0])
        return await self.reader.readexactly(length)


def build(host: str, path: str, payload: dict[str, object]) -> bytes:
    body = json.dumps(payload).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def connect(url: str) -> Conn:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    return Conn(reader, writer)


async def throughput(url: str, raw: bytes, check: bytes, tasks: int, concurrency: int) -> float:
    conns = [await connect(url) for _ in range(concurrency)]
    remaining = tasks

    async def loop(conn: Conn) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            body = await conn.request(raw)
            assert check in body, body[:200]

    start = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.writer.close()
    return elapsed


async def latency(url: str, raw: bytes, n: int) -> float:
    conn = await connect(url)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await conn.request(raw)
        samples.append(time.perf_counter() - t0)
    conn.writer.close()
    return statistics.median(samples)


async def direct_latency(n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await trivial_agent("p", None)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


async def run(args: argparse.Namespace) -> None:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    info = json.loads(proc.stdout.readline())
    url, peer = info["url"], info["peer_id"]
    host = url.removeprefix("http://")
    execute = build(host, "/api/execute", {"worker_id": peer, "prompt": "p"})
    chat = build(
        host,
        "/v1/chat/completions",
        {"model": "bench", "messages": [{"role": "user", "content": "p"}]},
    )
    chat_stream = build(
        host,
        "/v1/chat/completions",
        {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "p"}]},
    )
    try:
        # Warm up (imports, caches, connection setup) before measuring.
        await throughput(url, execute, b"NO_FILES", 500, args.concurrency)
        await throughput(url, chat, b"chat.completion", 200, args.concurrency)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, mesh pid {proc.pid}")
        print(f"{'route':34} {'tasks/s':>9} {'gw CPU/task':>12} {'added latency':>14}")
        direct = await direct_latency(2000)
        for label, raw, check in (
            ("POST /api/execute", execute, b"[AGENTFM: NO_FILES]"),
            ("POST /v1/chat/completions", chat, b'"finish_reason":"stop"'),
            ("POST /v1/chat/completions stream", chat_stream, b"data: [DONE]"),
        ):
            cpu0 = cpu_seconds(proc.pid)
            elapsed = await throughput(url, raw, check, args.tasks, args.concurrency)
            cpu = cpu_seconds(proc.pid) - cpu0
            lat = await latency(url, raw, args.latency_samples)
            print(
                f"{label:34} {args.tasks / elapsed:9.0f} {cpu / args.tasks * 1000:9.3f} ms"
                f" {(lat - direct) * 1000:11.3f} ms"
            )
        print(f"direct agent call median: {direct * 1e6:.1f} µs")
    finally:
        proc.stdin.close()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-samples", type=int, default=500)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
