"""Time to the first result of a scatter in a fresh process (cold) and again in it (warm).

Run: ``.venv/bin/python tests/benchmarks/bench_cold_start.py [--rounds 5] [--items 64]``

Issue #16 measured a cold scatter spending about 0.3 s before its first dispatch (importing
httpcore and building an SSL context for an ``http://`` gateway), so its first result came
0.22 s after the call against 0.08 s warm. This benchmark starts the scatter benchmark's
mesh (``_scatter_mesh.py``, group ``w1``: 16 workers × 4 slots, 20 ms tasks), then, for each
client and round, a brand-new interpreter that:

1. imports the client (timed apart: ``import s``);
2. creates it and runs one batch of ``--items`` prompts at the group's capacity, timing the
   first result and the whole batch from the call (``cold first s``, ``cold batch s``);
3. runs the same batch again on the same client (``warm first s``, ``warm batch s``).

It also counts ``ssl.create_default_context`` calls and reports whether ``httpcore`` was
imported, since neither should happen for an ``http://`` gateway on our lean path.

Clients: ``agentfm async`` (``AsyncAgentFMClient.tasks.scatter_iter``), ``agentfm sync``
(``AgentFMClient.tasks.scatter_iter``) and ``openai3 async`` (``AsyncOpenAI`` from the
benchmark's openai3 venv with a semaphore, the alternative a user would pick; its first
result is the first finished completion). Medians over the rounds are printed in one
table, with each row's cold first result against ``agentfm async``'s. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import _venvs  # noqa: E402  (sibling modules; the path is set just above)
from bench_scatter import start_mesh  # noqa: E402

# Each child prints one JSON line. The SSL counter wraps the function before any client
# module is imported, so a context built at import time is counted too.
PRELUDE = r"""
import json, ssl, sys, time
calls = [0]
_real = ssl.create_default_context
def _counting(*a, **k):
    calls[0] += 1
    return _real(*a, **k)
ssl.create_default_context = _counting
spec = json.loads(sys.argv[1])
prompts = [f"item-{i} say done" for i in range(spec["items"])]
t0 = time.perf_counter()
"""

AGENTFM_ASYNC = r"""
import asyncio
from agentfm import AsyncAgentFMClient
imported = time.perf_counter() - t0

async def batch(client):
    start = time.perf_counter()
    first = None
    ok = 0
    async for r in client.tasks.scatter_iter(
        prompts, peer_ids=spec["peers"], max_concurrency=spec["concurrency"]
    ):
        first = first if first is not None else time.perf_counter() - start
        ok += r.ok
    return first, time.perf_counter() - start, ok

async def main():
    async with AsyncAgentFMClient(spec["url"], api_key=None) as client:
        return await batch(client), await batch(client)

cold, warm = asyncio.run(main())
"""

AGENTFM_SYNC = r"""
from agentfm import AgentFMClient
imported = time.perf_counter() - t0

def batch(client):
    start = time.perf_counter()
    first = None
    ok = 0
    for r in client.tasks.scatter_iter(
        prompts, peer_ids=spec["peers"], max_concurrency=spec["concurrency"]
    ):
        first = first if first is not None else time.perf_counter() - start
        ok += r.ok
    return first, time.perf_counter() - start, ok

with AgentFMClient(spec["url"], api_key=None) as client:
    cold, warm = batch(client), batch(client)
"""

OPENAI_ASYNC = r"""
import asyncio
from openai import AsyncOpenAI
imported = time.perf_counter() - t0

async def batch(client):
    gate = asyncio.Semaphore(spec["concurrency"])
    start = time.perf_counter()
    first = [None]
    ok = [0]
    async def one(prompt):
        async with gate:
            reply = await client.chat.completions.create(
                model=spec["engine"], messages=[{"role": "user", "content": prompt}]
            )
        first[0] = first[0] if first[0] is not None else time.perf_counter() - start
        ok[0] += bool(reply.choices[0].message.content)
    await asyncio.gather(*(one(p) for p in prompts))
    return first[0], time.perf_counter() - start, ok[0]

async def main():
    client = AsyncOpenAI(base_url=spec["url"] + "/v1", api_key="bench")
    try:
        return await batch(client), await batch(client)
    finally:
        await client.close()

cold, warm = asyncio.run(main())
"""

EPILOGUE = r"""
print(json.dumps({
    "import": imported, "cold_first": cold[0], "cold_batch": cold[1], "cold_ok": cold[2],
    "warm_first": warm[0], "warm_batch": warm[1], "warm_ok": warm[2],
    "ssl_contexts": calls[0], "httpcore": "httpcore" in sys.modules,
}))
"""


def run_child(python: str, body: str, spec: dict[str, object]) -> dict[str, float]:
    """One fresh interpreter running one client's cold and warm batch."""
    code = PRELUDE + body + EPILOGUE
    done = subprocess.run(
        [python, "-c", code, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    if done.returncode != 0:
        raise SystemExit(f"{python}: child failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--items", type=int, default=64)
    args = parser.parse_args()

    openai_python = str(_venvs.ensure(_venvs.OPENAI3))
    print("main venv:", _venvs.versions(sys.executable, _venvs.MAIN_SHOWS))
    print("openai3 venv:", _venvs.versions(openai_python, _venvs.OPENAI3.shows))
    mesh, info = start_mesh(ROOT)
    try:
        groups = info["groups"]
        assert isinstance(groups, dict)
        peers = [w["peer_id"] for w in groups["w1"]]
        spec = {
            "url": info["url"],
            "peers": peers,
            "engine": "w1",
            "concurrency": 4 * len(peers),
            "items": args.items,
        }
        clients = {
            "agentfm async": (sys.executable, AGENTFM_ASYNC),
            "agentfm sync": (sys.executable, AGENTFM_SYNC),
            "openai3 async": (openai_python, OPENAI_ASYNC),
        }
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
        # Alternate clients round by round so a busy spell on the machine hits all of them.
        for _ in range(args.rounds):
            for name, (python, body) in clients.items():
                rows[name].append(run_child(python, body, spec))
    finally:
        assert mesh.stdin is not None
        mesh.stdin.close()
        mesh.wait(timeout=30)

    keys = ("import", "cold_first", "warm_first", "cold_batch", "warm_batch")
    medians = {
        name: {k: statistics.median(r[k] for r in runs) for k in keys}
        for name, runs in rows.items()
    }
    base = medians["agentfm async"]["cold_first"]
    print(
        f"\n{args.items} items, 20 ms tasks, {spec['concurrency']} slots; "
        f"medians of {args.rounds} fresh processes each\n"
    )
    print(
        "| client | import s | cold first s | warm first s | cold batch s | warm batch s "
        "| ok (cold/warm) | SSL contexts | httpcore imported | cold first vs agentfm async |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, m in medians.items():
        runs = rows[name]
        ok = f"{min(r['cold_ok'] for r in runs):.0f}/{min(r['warm_ok'] for r in runs):.0f}"
        ssl = max(r["ssl_contexts"] for r in runs)
        httpcore = "yes" if any(r["httpcore"] for r in runs) else "no"
        print(
            f"| {name} | {m['import']:.3f} | {m['cold_first']:.3f} | {m['warm_first']:.3f} "
            f"| {m['cold_batch']:.3f} | {m['warm_batch']:.3f} | {ok} | {ssl:.0f} | {httpcore} "
            f"| {m['cold_first'] / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
