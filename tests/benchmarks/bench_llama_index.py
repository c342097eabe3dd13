"""Benchmark: 200 LlamaIndex completions on an embedded mesh, three ways, in one run.

1. `AgentFM.abatch_complete` (one scatter across every matching peer);
2. `run_jobs` (LlamaIndex's bounded `asyncio.gather`) of `AgentFM.acomplete`;
3. the same `run_jobs` of `OpenAILike.acomplete` pointed at the mesh's `/v1`.

All three keep at most `--concurrency` calls in flight, which matches the mesh's capacity.
Prints the versions used, wall time per way and ratios against the scatter. Not a test:
nothing is asserted.

`OpenAILike` runs in this (dev) venv, on purpose: its llama-index-llms-openai pins
`openai<3`, so the newest openai it resolves to is the newest 2.x, which the dev extra
installs; the benchmark venv's openai 3.x (`_venvs.py`) cannot load it.

Run: `.venv/bin/python tests/benchmarks/bench_llama_index.py [--prompts 200] [--work-ms 50]`
(`--quick`: 64 prompts)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

from _venvs import versions
from llama_index.core.async_utils import run_jobs
from llama_index.llms.openai_like import OpenAILike

from agentfm.mesh import AgentContext, CallableAgent, EmbeddedMesh, WorkerConfig
from agentfm_integrations.llama_index import AgentFM

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

SHOWS = (
    "llama-index-core",
    "llama-index-llms-openai-like",
    "llama-index-llms-openai",
    "openai",
    "httpx",
)


def _mesh(workers: int, slots: int, work_s: float) -> EmbeddedMesh:
    async def agent(prompt: str, ctx: AgentContext) -> str:
        await asyncio.sleep(work_s)  # stands in for model time on the worker
        return f"done {prompt}\n"

    return EmbeddedMesh(
        workers=[
            WorkerConfig(f"bench-{i}", "bench", CallableAgent(agent), max_tasks=slots)
            for i in range(workers)
        ]
    )


async def _safe(call: Awaitable[Any]) -> Any:
    """Report a failed call as its exception so one failure does not end the run."""
    try:
        return await call
    except Exception as exc:
        return exc


async def _timed(label: str, fn: Callable[[], Awaitable[list[Any]]], n: int) -> float:
    start = time.perf_counter()
    results = await fn()
    elapsed = time.perf_counter() - start
    failures = [r for r in results if isinstance(r, BaseException)]
    ok = n - len(failures)
    if failures:
        print(f"  first failure: {type(failures[0]).__name__}: {failures[0]}")
    print(f"{label:<44} {elapsed:7.2f} s   {n / elapsed:7.1f} prompts/s   ok {ok}/{n}")
    return elapsed


async def main(n: int, workers: int, slots: int, work_ms: float) -> None:
    concurrency = workers * slots
    prompts = [f"prompt {i}" for i in range(n)]
    with _mesh(workers, slots, work_ms / 1000) as mesh:
        llm = AgentFM(model="bench", gateway_url=mesh.url, max_concurrency=concurrency)
        openai_like = OpenAILike(
            model="bench",
            api_base=f"{mesh.url}/v1",
            api_key="unused",
            is_chat_model=False,
            timeout=120,
        )
        await llm.acomplete("warm-up")
        await openai_like.acomplete("warm-up")

        print(f"{n} prompts, {workers} workers x {slots} slots, {work_ms:g} ms agent work")
        scatter = await _timed(
            "AgentFM.abatch_complete (one scatter)",
            lambda: llm.abatch_complete(prompts, return_exceptions=True),
            n,
        )
        gather = await _timed(
            f"run_jobs(AgentFM.acomplete, workers={concurrency})",
            lambda: run_jobs([_safe(llm.acomplete(p)) for p in prompts], workers=concurrency),
            n,
        )
        openai = await _timed(
            f"run_jobs(OpenAILike.acomplete, workers={concurrency})",
            lambda: run_jobs(
                [_safe(openai_like.acomplete(p)) for p in prompts], workers=concurrency
            ),
            n,
        )
        print(f"ratio gather/scatter     {gather / scatter:5.2f}x")
        print(f"ratio openai-like/scatter {openai / scatter:5.2f}x")
        await llm.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--work-ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="64 prompts: a sanity run")
    args = parser.parse_args()
    if args.quick:
        args.prompts = 64
    print(versions(sys.executable, SHOWS))
    asyncio.run(main(args.prompts, args.workers, args.slots, args.work_ms))
